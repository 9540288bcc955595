"""Turning incoming event documents into domain events."""
