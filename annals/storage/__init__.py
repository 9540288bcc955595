"""Driver selection by URL scheme, through the ``annals.storage`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points

from annals.errors import AnnalsError
from annals.storage.base import StorageDriver


def get_driver(url: str, pool_size: int = 10, pool_timeout: int = 30) -> StorageDriver:
    """Instantiate the driver registered for the scheme of ``url``."""
    scheme = url.partition(":")[0].partition("+")[0].lower()
    if scheme == "postgres":
        scheme = "postgresql"
    found = entry_points(group="annals.storage", name=scheme)
    for ep in found:
        driver_class: type[StorageDriver] = ep.load()
        return driver_class(url, pool_size=pool_size, pool_timeout=pool_timeout)
    raise AnnalsError(f"No storage driver for database URL scheme '{scheme}'")
