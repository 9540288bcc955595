"""Falcon middleware: caller identity and the request body limit."""

from __future__ import annotations

import falcon

from annals.policy import Credentials


class NoAuthIdentity:
    """``auth_mode = noauth``: identity from X-User-Id, X-Project-Id and X-Roles.

    X-Auth-Token is ignored. Only for development, tests, or behind a proxy that sets
    (and strips client-sent) identity headers itself.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.credentials = Credentials.from_headers(
            req.get_header("X-User-Id"),
            req.get_header("X-Project-Id"),
            req.get_header("X-Roles"),
        )


class BodyLimit:
    """Reads the body once, refusing more than ``limit`` bytes with 413."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.body = b""
        length = req.content_length
        if length is not None and length > self.limit:
            raise falcon.HTTPContentTooLarge(
                description=f"The request body is larger than {self.limit} bytes."
            )
        if length or req.get_header("Transfer-Encoding"):
            body = req.bounded_stream.read(self.limit + 1)
            if len(body) > self.limit:
                raise falcon.HTTPContentTooLarge(
                    description=f"The request body is larger than {self.limit} bytes."
                )
            req.context.body = body

