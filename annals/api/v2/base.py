"""What every V2 resource shares: the driver, the config, and the response helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import falcon

from annals.api.negotiation import response_format
from annals.api.params import parse_query_string
from annals.api.serializers import Format
from annals.policy import Credentials, Policy, default_policy
from annals.storage.base import StorageDriver


@dataclass(slots=True)
class Settings:
    """The slice of configuration the API resources use."""

    default_limit: int = 100
    max_limit: int = 10000
    max_filters: int = 100
    #: oslo.policy rules (``[oslo_policy]``); the built-in defaults when not configured
    policy: Policy = field(default_factory=default_policy)


class Resource:
    def __init__(self, driver: StorageDriver, settings: Settings) -> None:
        self.driver = driver
        self.settings = settings

    @staticmethod
    def credentials(req: falcon.Request) -> Credentials:
        creds: Credentials = req.context.credentials
        return creds

    @staticmethod
    def no_parameters(req: falcon.Request) -> None:
        parse_query_string(req.query_string, ())

    @staticmethod
    def reply(
        req: falcon.Request, resp: falcon.Response, body: bytes, fmt: Format, status: int = 200
    ) -> None:
        resp.status = status
        resp.content_type = fmt.value
        resp.data = body

    @staticmethod
    def reply_stream(
        req: falcon.Request, resp: falcon.Response, body: Iterator[bytes], fmt: Format
    ) -> None:
        """A 200 whose body is sent piece by piece as ``body`` yields it, without
        Content-Length (chunked transfer encoding over HTTP/1.1).

        Whatever can fail must have run before: once the first piece is out the status
        cannot change, and an exception in ``body`` only cuts the connection short (the
        server logs it; an HTTP/1.1 client sees an unterminated chunked body, an HTTP/1.0
        one a document without its end).
        """
        resp.status = 200
        resp.content_type = fmt.value
        resp.stream = body

    @staticmethod
    def fmt(req: falcon.Request) -> Format:
        return response_format(req)
