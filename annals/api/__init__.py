"""The HTTP layer: Falcon resources over the StorageDriver interface. No SQL in here."""
