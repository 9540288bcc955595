"""One log line per request, and the request id on every line logged while serving it.

The access line (logger ``annals.access``) names the request id (``X-Openstack-Request-Id``),
the caller, the method, path and route template, the status and the duration::

    request_id=req-1f0c… method=GET path=/v2/events/abc route=/v2/events/{message_id}
    status=404 duration_ms=2.41 caller=user:alice/project:web remote=127.0.0.1

The caller is who the identity middleware says it is (user and project, or the publisher's
name): never a token, a password or an Authorization header, which are not read here at all.
Values a client controls are escaped, so that a header or path cannot forge log lines.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, Token
from typing import Any, Final

import falcon
from falcon.routing import CompiledRouter
from oslo_middleware import request_id as oslo_request_id

from annals.api.metrics import REJECTED_STATUSES, Metrics
from annals.policy import Credentials

ACCESS_LOG: Final = logging.getLogger("annals.access")
#: Longest query string written to the access line (filters can be long).
MAX_QUERY_LOGGED: Final = 512

#: The id of the request this thread is serving ("-" outside a request).
current_request_id: ContextVar[str] = ContextVar("annals_request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record, and ``request_context`` (`` [req-…]`` while a
    request is served, else empty) for formats that show it (``annals serve``). The access
    line has the id in its message already, so its context stays empty."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        record.request_id = request_id
        shown = request_id != "-" and record.name != ACCESS_LOG.name
        record.request_context = f" [{request_id}]" if shown else ""
        return True


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


def _clean(value: str, limit: int = 255) -> str:
    """A client-supplied value made safe for one log line: control characters escaped,
    quoted when it holds spaces, quotes, backslashes or '=', cut at ``limit`` characters."""
    if len(value) > limit:
        value = value[:limit] + "..."
    escaped = "".join(_escape(char) for char in value)
    if escaped and escaped == value and " " not in value and "=" not in value:
        return value
    return f'"{escaped}"'


def caller_of(credentials: Credentials | None) -> str:
    if credentials is None:
        return "-"
    if credentials.is_publisher:
        return f"publisher:{_clean(credentials.user_id or '')}"
    parts = []
    if credentials.user_id:
        parts.append(f"user:{_clean(credentials.user_id)}")
    if credentials.project_id:
        parts.append(f"project:{_clean(credentials.project_id)}")
    if credentials.domain_id:
        parts.append(f"domain:{_clean(credentials.domain_id)}")
    if credentials.is_system_scoped:
        parts.append("system:all")
    return "/".join(parts) or "anonymous"


class ObservedBody:
    """A streamed response body that calls ``done`` once the WSGI server has closed it
    (PEP 3333: the server calls ``close()`` when the response is over, sent or not)."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body = body
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


class RequestObserver:
    """Falcon middleware, first in the chain: times every request, counts it in the metrics
    and writes its access line.

    Being first, its ``process_response`` runs last, after every other middleware and error
    handler has settled the status, including for requests refused by a later middleware.
    """

    def __init__(
        self, metrics: Metrics | None, access_log: bool = True, router: CompiledRouter | None = None
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        #: The application's router, to name the route of requests refused before routing
        #: (bad publisher credentials, a missing token, a body too large).
        self.router = router

    def _route(self, req: falcon.Request) -> str | None:
        if req.uri_template is not None or self.router is None:
            return req.uri_template
        found = self.router.find(req.path)
        return found[3] if found is not None else None

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        req.context.request_id_token = current_request_id.set(
            str(req.env.get(oslo_request_id.ENV_REQUEST_ID) or "-")
        )
        if self.metrics is not None:
            self.metrics.in_progress.inc()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        started: float | None = getattr(req.context, "started", None)
        if started is None:  # process_request never ran
            return
        route = self._route(req)
        try:
            stream = resp.stream
            if stream is not None and not hasattr(stream, "read"):
                # A streamed page is rendered while it is sent: the request ends when the
                # server is done with the body (and closes it), not now.
                request_id = current_request_id.get()
                status = resp.status_code
                resp.stream = ObservedBody(
                    stream, lambda: self._finish_as(request_id, req, status, route, started)
                )
            else:
                self._finish(req, resp.status_code, route, started)
        finally:
            token: Token[str] | None = getattr(req.context, "request_id_token", None)
            if token is not None:
                current_request_id.reset(token)

    def _finish_as(
        self, request_id: str, req: falcon.Request, status: int, route: str | None, started: float
    ) -> None:
        token = current_request_id.set(request_id)
        try:
            self._finish(req, status, route, started)
        finally:
            current_request_id.reset(token)

    def _finish(self, req: falcon.Request, status: int, route: str | None, started: float) -> None:
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.in_progress.dec()
            self.metrics.observe_request(req.method, route, status, seconds)
            if req.method == "POST" and route == "/v2/events" and status in REJECTED_STATUSES:
                self.metrics.observe_rejected_batch(getattr(req.context, "body", b""))
        if self.access_log:
            self._log(req, status, route, seconds)

    @staticmethod
    def _log(req: falcon.Request, status: int, route: str | None, seconds: float) -> None:
        path = str(req.env.get("PATH_INFO", ""))
        with contextlib.suppress(UnicodeError):  # PEP 3333: servers hand it over as latin-1
            path = path.encode("latin-1").decode("utf-8")
        fields = [
            f"request_id={_clean(current_request_id.get())}",
            f"method={_clean(req.method, 16)}",
            f"path={_clean(path, 512)}",
        ]
        if req.query_string:
            fields.append(f"query={_clean(req.query_string, MAX_QUERY_LOGGED)}")
        fields += [
            f"route={_clean(route) if route else '-'}",
            f"status={status}",
            f"duration_ms={seconds * 1000:.2f}",
            f"caller={caller_of(getattr(req.context, 'credentials', None))}",
            f"remote={_clean(req.remote_addr or '-', 64)}",
        ]
        level = logging.WARNING if status >= 500 else logging.INFO
        ACCESS_LOG.log(level, " ".join(fields))
