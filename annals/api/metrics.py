"""Prometheus metrics: requests per route template, events ingested, storage errors.

Under ``annals serve`` every gunicorn worker is a separate process, so the values live in
prometheus_client's multiprocess mode: each process writes its own memory-mapped files in
the directory named by ``PROMETHEUS_MULTIPROC_DIR`` (``annals serve`` creates it, empties it at
start and removes it at exit), and ``GET /metrics``, whichever worker answers it, adds up the
files of every worker, dead ones included, so counters never go backwards when a worker is
replaced. Without that variable (an application built by ``create_app`` under another WSGI
server, or in tests) the values are this process's own.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from typing import Final

import falcon
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from annals.errors import AnnalsError, StorageError, StorageUnavailable
from annals.models import Event, RecordResult, Trait, TraitDescription
from annals.query import EventQuery, Scope
from annals.storage.base import StorageDriver

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

#: Methods that get their own label value; anything else is counted as "other" so that a
#: client cannot create label values (and time series) at will. Paths are never labels: the
#: route template is, and requests that match no route share "unmatched".
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED: Final = "unmatched"

#: Request latency buckets (seconds): sub-millisecond reads up to the worker timeout.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: Statuses of ``POST /v2/events`` that mean the batch itself was refused (all or nothing).
REJECTED_STATUSES: Final = frozenset({400, 413, 415})


def multiprocess_dir() -> str | None:
    """The directory of the multiprocess files, when this process runs in that mode."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The metrics of one application, and their exposition."""

    def __init__(self) -> None:
        shared = multiprocess_dir()
        if shared is not None and not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client picks how values are stored when it is first imported. A
            # process that imported it before the directory was set (a WSGI server loading
            # the application late) would otherwise keep per-process values that /metrics
            # never sees.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        own = None if shared is not None else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "annals_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "annals_http_request_duration_seconds",
            "Time from the request reaching the application to its response, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.in_progress = Gauge(
            "annals_http_requests_in_progress",
            "Requests being served right now (all workers).",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.events_ingested = Counter(
            "annals_events_ingested",
            "Events stored by POST /v2/events (duplicates not included).",
            registry=own,
        )
        self.events_duplicates = Counter(
            "annals_events_duplicates",
            "Events of POST /v2/events skipped because their message_id was already stored.",
            registry=own,
        )
        self.events_rejected = Counter(
            "annals_events_rejected",
            "Events in batches POST /v2/events refused as invalid (a batch is refused whole; "
            "a body that is not JSON counts as a batch of unknown size, see "
            "annals_event_batches_rejected_total).",
            registry=own,
        )
        self.batches_rejected = Counter(
            "annals_event_batches_rejected",
            "Batches POST /v2/events refused as invalid (400, 413, 415).",
            registry=own,
        )
        self.storage_errors = Counter(
            "annals_storage_errors",
            "Database failures seen by the API: kind 'unavailable' (cannot be reached, "
            "answered 503 with Retry-After) or 'refused' (read-only, disk full...).",
            ["operation", "kind"],
            registry=own,
        )
        if own is None:  # every worker's files, read at each scrape
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=shared)  # type: ignore[no-untyped-call]
        else:
            self._exposed = own

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        label = route if route is not None else UNMATCHED
        self.requests.labels(method, label, str(status)).inc()
        self.latency.labels(method, label).observe(seconds)

    def observe_rejected_batch(self, body: bytes) -> None:
        self.batches_rejected.inc()
        count = _documents_in(body)
        if count:
            self.events_rejected.inc(count)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The text format Prometheus asked for (OpenMetrics or the classic text format)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._exposed), content_type


def _documents_in(body: bytes) -> int:
    """How many events a refused body carried, when it is JSON at all."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0
    if isinstance(doc, list):
        return len(doc)
    return 1 if isinstance(doc, dict) else 0


class MetricsResource:
    """``GET /metrics``: the Prometheus text exposition of every worker's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body, content_type = self.metrics.exposition(req.get_header("Accept"))
        resp.content_type = content_type
        resp.data = body


class MeteredDriver(StorageDriver):
    """A driver that counts what the API's calls to another driver give: events stored and
    skipped as duplicates, and storage errors by operation and kind."""

    def __init__(self, inner: StorageDriver, metrics: Metrics) -> None:
        super().__init__(inner.url)
        self.inner = inner
        self.metrics = metrics

    def _count_storage(self, exc: AnnalsError, operation: str) -> None:
        """Reads also raise InvalidMarker (a client error): only storage failures count."""
        if isinstance(exc, StorageUnavailable):
            self.metrics.storage_errors.labels(operation, "unavailable").inc()
        elif isinstance(exc, StorageError):
            self.metrics.storage_errors.labels(operation, "refused").inc()

    def _counting(self, items: Iterator[Trait], operation: str) -> Iterator[Trait]:
        try:
            yield from items
        except AnnalsError as exc:
            self._count_storage(exc, operation)
            raise

    def record_events(self, events: Sequence[Event]) -> RecordResult:
        try:
            result = self.inner.record_events(events)
        except AnnalsError as exc:
            self._count_storage(exc, "record_events")
            raise
        self.metrics.events_ingested.inc(result.stored)
        if result.duplicates:
            self.metrics.events_duplicates.inc(len(result.duplicates))
        return result

    def get_events(self, query: EventQuery) -> list[Event]:
        try:
            return self.inner.get_events(query)
        except AnnalsError as exc:
            self._count_storage(exc, "get_events")
            raise

    def get_event_types(self, scope: Scope) -> list[str]:
        try:
            return self.inner.get_event_types(scope)
        except AnnalsError as exc:
            self._count_storage(exc, "get_event_types")
            raise

    def get_trait_types(self, event_type: str, scope: Scope) -> list[TraitDescription]:
        try:
            return self.inner.get_trait_types(event_type, scope)
        except AnnalsError as exc:
            self._count_storage(exc, "get_trait_types")
            raise

    def get_traits(self, event_type: str, trait_name: str, scope: Scope) -> Iterator[Trait]:
        try:
            items = self.inner.get_traits(event_type, trait_name, scope)
        except AnnalsError as exc:
            self._count_storage(exc, "get_traits")
            raise
        return self._counting(items, "get_traits")

    def event_type_counts(self) -> dict[str, int]:
        return self.inner.event_type_counts()

    def _expire_batch(self, cutoff: dt.datetime, limit: int) -> tuple[int, set[str]]:
        return self.inner._expire_batch(cutoff, limit)

    def _prune_metadata(self, event_types: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.inner._prune_metadata(event_types)

    def storage_capabilities(self) -> dict[str, bool]:
        return self.inner.storage_capabilities()

    def upgrade(self) -> None:
        self.inner.upgrade()

    def schema_is_current(self) -> bool:
        return self.inner.schema_is_current()

    def ping(self) -> None:
        try:
            self.inner.ping()
        except AnnalsError as exc:
            self._count_storage(exc, "ping")
            raise

    def clear(self) -> None:
        self.inner.clear()

    def refresh_statistics(self) -> None:
        self.inner.refresh_statistics()

    def close(self) -> None:
        self.inner.close()
