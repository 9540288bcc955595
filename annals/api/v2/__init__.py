"""Resources of the Panko V2 API."""
