"""The storage contract every driver implements. Small on purpose: a new engine is one module."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import ClassVar

from annals import timeutil
from annals.models import Event, ExpiryResult, RecordResult, Trait, TraitDescription
from annals.query import EventQuery, Scope

API_CAPABILITIES: dict[str, bool] = {"events:query:simple": True}
#: Events deleted per transaction when ``events_delete_batch_size`` is 0 (no limit per run).
DEFAULT_EXPIRY_BATCH = 10_000


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
    def event_type_counts(self) -> dict[str, int]:
        """Number of stored events per event type (operations, verification)."""

    def clear_expired_data(
        self, ttl_seconds: int, batch_size: int = 0, now: dt.datetime | None = None
    ) -> ExpiryResult:
        """Delete every event generated more than ``ttl_seconds`` before ``now``.

        Deletion runs in transactions of ``batch_size`` events (0: DEFAULT_EXPIRY_BATCH), so a
        large backlog never holds one long transaction or lock; then event types and trait
        descriptions left without events are removed. ``ttl_seconds <= 0`` keeps everything.
        """
        if ttl_seconds <= 0:
            return ExpiryResult(cutoff=None)
        cutoff = (now or timeutil.utcnow()) - dt.timedelta(seconds=ttl_seconds)
        size = batch_size if batch_size > 0 else DEFAULT_EXPIRY_BATCH
        deleted = batches = 0
        touched: set[str] = set()
        while True:
            count, types = self._expire_batch(cutoff, size)
            deleted += count
            touched |= types
            if count:
                batches += 1
            if count < size:
                break
        removed_types, removed_traits = self._prune_metadata(touched) if touched else ((), ())
        return ExpiryResult(cutoff, deleted, batches, removed_types, removed_traits)

    @abc.abstractmethod
    def _expire_batch(self, cutoff: dt.datetime, limit: int) -> tuple[int, set[str]]:
        """Delete up to ``limit`` of the oldest events generated before ``cutoff``, with their
        traits, in one transaction; return how many, and the event types they had."""

    @abc.abstractmethod
    def _prune_metadata(self, event_types: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Among ``event_types``, remove those left without events and the trait descriptions
        left without traits; return what was removed (``type``, ``type/trait:kind``). Must be
        safe while other processes record events of these types."""

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

    def refresh_statistics(self) -> None:  # noqa: B027 - optional hook
        """Refresh the engine's planner statistics after bulk changes (default: nothing)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a sensible default
        """Release connections. The default has nothing to release."""
