"""The storage contract every driver implements. Small on purpose: a new engine is one module."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import ClassVar

from annals.models import Event, RecordResult, Trait, TraitDescription
from annals.query import EventQuery, Scope

API_CAPABILITIES: dict[str, bool] = {"events:query:simple": True}


class StorageDriver(abc.ABC):
    """A place events are stored in and queried from.

    Drivers raise :class:`annals.errors.StorageUnavailable` when the database cannot be
    reached, :class:`annals.errors.StorageError` when it refuses a write, and
    :class:`annals.errors.InvalidMarker` for a marker the query's scope cannot see.
    """

    #: Which URL schemes (``scheme`` or ``scheme+driver``) the driver accepts.
    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, url: str, pool_size: int = 10, pool_timeout: int = 30) -> None:
        self.url = url

    @abc.abstractmethod
    def record_events(self, events: Sequence[Event]) -> RecordResult:
        """Store a batch atomically: all new events of the batch, or none.

        An event whose message_id is already stored (or repeated in the batch) is a
        duplicate: it is skipped and reported, never an error and never a second row.
        """

    @abc.abstractmethod
    def get_events(self, query: EventQuery) -> list[Event]:
        """Events matching every condition of ``query``, in its sort order, one page."""

    @abc.abstractmethod
    def get_event_types(self, scope: Scope) -> list[str]:
        """Names of the event types that have stored events, sorted."""

    @abc.abstractmethod
    def get_trait_types(self, event_type: str, scope: Scope) -> list[TraitDescription]:
        """Distinct (name, type) of the traits seen on ``event_type``.

        Sorted as Panko lists them: by type (string, integer, float, datetime), then name.
        """

    @abc.abstractmethod
    def get_traits(self, event_type: str, trait_name: str, scope: Scope) -> Iterator[Trait]:
        """Every value of trait ``trait_name`` on events of ``event_type``, by type, then in
        the order the events were stored."""

    @abc.abstractmethod
    def storage_capabilities(self) -> dict[str, bool]:
        """The ``event_storage`` part of /v2/capabilities."""

    @abc.abstractmethod
    def upgrade(self) -> None:
        """Create or upgrade the schema to the current revision."""

    @abc.abstractmethod
    def schema_is_current(self) -> bool:
        """True when the schema exists and is at the current revision."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every stored event (tests and tooling only)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a sensible default
        """Release connections. The default has nothing to release."""
