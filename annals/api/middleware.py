"""Falcon middleware: caller identity and the request body limit."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import falcon

from annals.errors import InvalidQuery, Unauthorized
from annals.policy import SYSTEM_ALL, Credentials

#: Paths served without any identity in keystone mode (as Panko's paste pipeline did), plus
#: the API description and the Prometheus metrics (no tenant data in either).
PUBLIC_PATHS = frozenset({"", "/", "/healthcheck", "/metrics", "/v2/openapi.json"})


class NoAuthIdentity:
    """``auth_mode = noauth``: identity from X-User-Id, X-Project-Id, X-Roles and
    OpenStack-System-Scope (the headers keystonemiddleware would set).

    X-Auth-Token is ignored. Only for development, tests, or behind a proxy that sets
    (and strips client-sent) identity headers itself.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if getattr(req.context, "credentials", None) is not None:
            return  # a publisher, authenticated by PublisherBasicAuth
        req.context.credentials = Credentials.from_headers(
            req.get_header("X-User-Id"),
            req.get_header("X-Project-Id"),
            req.get_header("X-Roles"),
            req.get_header("OpenStack-System-Scope"),
        )


def credentials_from_token(environ: Mapping[str, Any]) -> Credentials | None:
    """The caller of a request that keystonemiddleware's auth_token has seen.

    Only what auth_token validated counts: its ``keystone.token_auth`` plugin, confirmed by
    the status header it sets itself (after removing any client-sent one). A token that
    failed validation, an expired one (auth_token lets those through with a service
    token; Annals does not), or an invalid service token give None.
    """
    plugin = environ.get("keystone.token_auth")
    if plugin is None or not plugin.has_user_token:
        return None
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        return None
    if environ.get("HTTP_X_SERVICE_IDENTITY_STATUS", "Confirmed") != "Confirmed":
        return None
    token = plugin.user  # keystoneauth1.access.AccessInfo
    if token.will_expire_soon(stale_duration=0):
        return None
    return Credentials(
        user_id=token.user_id or None,
        project_id=token.project_id if token.project_scoped else None,
        roles=tuple(token.role_names or ()),
        system_scope=SYSTEM_ALL if token.system_scoped else None,
        domain_id=token.domain_id if token.domain_scoped else None,
    )


class KeystoneIdentity:
    """``auth_mode = keystone``: identity from the token validated by auth_token.

    keystonemiddleware runs in front of the application with ``delay_auth_decision``, so
    that Annals answers 401 itself, in its own error format. Every path except
    :data:`PUBLIC_PATHS` needs a valid token, or publisher credentials (which
    :class:`PublisherBasicAuth`, earlier in the chain, has checked). Identity headers sent
    by the client are never read (and auth_token has removed them).
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if getattr(req.context, "credentials", None) is not None:
            return  # a publisher, authenticated by PublisherBasicAuth
        creds = credentials_from_token(req.env)
        if creds is None:
            if req.path in PUBLIC_PATHS:
                req.context.credentials = Credentials()
                return
            raise Unauthorized("The request you have made requires authentication.")
        req.context.credentials = creds


class PublisherBasicAuth:
    """HTTP Basic credentials of event publishers (``[api] publisher_credentials``).

    A request carrying ``Authorization: Basic`` is a publisher's: it either matches a
    configured pair and is a publisher (``is_publisher``: by default it may only record
    events), or is refused with 401. Requests without Basic credentials are left alone.
    Runs before the identity middleware, which then keeps the publisher's credentials.
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
        req.context.credentials = Credentials(user_id=name, is_publisher=True)


class Utf8Path:
    """A path that is not UTF-8 once percent-decoded is a 400, not a replacement character.

    WSGI servers hand over the decoded path as latin-1 (PEP 3333); Falcon would decode it
    leniently and look up a name with U+FFFD in it.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        path: str = req.env.get("PATH_INFO", "")
        try:
            path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise InvalidQuery("The request path is not valid UTF-8") from None


class BodyLimit:
    """Reads the body once, refusing more than ``limit`` bytes with 413."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.body = b""
        length = req.content_length
        if length is not None and length > self.limit:
            raise self._too_large()
        if length:
            body = req.bounded_stream.read(self.limit + 1)
        elif length is None and req.get_header("Transfer-Encoding"):
            # Chunked: no length to bound the stream by (Falcon's bounded_stream would read
            # nothing); the server decodes the chunks, we stop one byte past the limit.
            body = self._read_unbounded(req.stream)
        else:
            return
        if len(body) > self.limit:
            raise self._too_large()
        req.context.body = body

    def _read_unbounded(self, stream: Any) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size <= self.limit:
            part: bytes = stream.read(min(65536, self.limit + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    def _too_large(self) -> falcon.HTTPContentTooLarge:
        return falcon.HTTPContentTooLarge(
            description=f"The request body is larger than {self.limit} bytes."
        )
