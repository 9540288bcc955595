"""Domain errors. They carry no HTTP knowledge; api/errors.py maps them to statuses."""

from __future__ import annotations


class AnnalsError(Exception):
    """Base class of every error Annals raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidQuery(AnnalsError):
    """A query that cannot be run as given (bad operator, type, value, sort...)."""


class InvalidMarker(InvalidQuery):
    """The pagination marker names no event the caller can see."""


class InvalidEvent(AnnalsError):
    """An event submitted for storage is malformed."""


class NotFound(AnnalsError):
    """The requested entity does not exist or is not visible to the caller."""


class Forbidden(AnnalsError):
    """The caller is identified but not allowed (403)."""


class Unauthorized(AnnalsError):
    """The caller is not allowed, reported as Panko reports it (401)."""


class StorageUnavailable(AnnalsError):
    """The database cannot be reached right now; the request may be retried."""


class StorageError(AnnalsError):
    """The database refused an operation (full disk, read-only, constraint...)."""
