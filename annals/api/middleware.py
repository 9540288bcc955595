"""Falcon middleware: caller identity and the request body limit."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

import falcon

from annals.errors import Unauthorized
from annals.policy import PUBLISHER_ROLE, Credentials


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


class PublisherBasicAuth:
    """HTTP Basic credentials of event publishers (``[api] publisher_credentials``).

    A request carrying ``Authorization: Basic`` is a publisher's: it either matches a
    configured pair and gets the publisher role (which may only record events), or is
    refused with 401. Requests without Basic credentials are left alone.
    """

    def __init__(self, pairs: Sequence[str]) -> None:
        self.users: dict[str, bytes] = {}
        for pair in pairs:
            user, _, password = pair.partition(":")
            self.users[user] = password.encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        header = req.get_header("Authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
            name = user.decode()
        except (binascii.Error, UnicodeDecodeError):
            sep = b""
            name, password = "", b""
        expected = self.users.get(name)
        if not sep or expected is None or not hmac.compare_digest(expected, password):
            resp.set_header("WWW-Authenticate", 'Basic realm="annals"')
            raise Unauthorized("Invalid publisher credentials")
        req.context.credentials = Credentials(user_id=name, roles=(PUBLISHER_ROLE,))


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

