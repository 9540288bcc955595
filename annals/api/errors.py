"""One table from exception to HTTP status, and one error body (Panko's shape)."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from annals import errors
from annals.api.negotiation import NotAcceptable, error_format
from annals.api.params import UnsupportedMediaType
from annals.api.serializers import error_body

LOG = logging.getLogger(__name__)

#: Most specific first: the first class an exception is an instance of wins.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnsupportedMediaType, 415),
    (errors.InvalidQuery, 400),
    (errors.InvalidEvent, 400),
    (errors.NotFound, 404),
    (errors.Forbidden, 403),
    (errors.Unauthorized, 401),
    (errors.StorageUnavailable, 503),
    (errors.StorageError, 503),
)


def status_of(exc: Exception) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _respond(req: falcon.Request, resp: falcon.Response, status: int, message: str) -> None:
    fmt = error_format(req)
    resp.status = status
    resp.content_type = fmt.value
    resp.data = error_body(status, message, fmt)


def handle_domain(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    status = status_of(exc)
    message = exc.message if isinstance(exc, errors.AnnalsError) else str(exc)
    if status >= 500:
        LOG.error("%s %s failed: %s", req.method, req.path, message)
        if status == 503:
            resp.set_header("Retry-After", "5")
    _respond(req, resp, status, message)


def handle_not_acceptable(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    accept = exc.accept if isinstance(exc, NotAcceptable) else ""
    _respond(
        req,
        resp,
        406,
        f"The resource could not be generated that was acceptable to your browser "
        f"(content of type {accept}).",
    )


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    if isinstance(exc, falcon.HTTPError):
        raise exc
    LOG.exception("unexpected error serving %s %s", req.method, req.path)
    _respond(req, resp, 500, "Internal server error; the details are in the server log.")


def serialize_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Falcon's own errors (404, 405, 413...) in Panko's shape."""
    status = int(exc.status_code)
    message = exc.description or exc.title or str(status)
    if status == 404 and not exc.description:
        message = "The resource could not be found."
    if status == 405:
        message = f"The method {req.method} is not allowed for this resource."
    fmt = error_format(req)
    resp.content_type = fmt.value
    resp.data = error_body(status, message, fmt)
