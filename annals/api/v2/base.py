"""What every V2 resource shares: the driver, the config, and the response helpers."""

from __future__ import annotations

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
    def fmt(req: falcon.Request) -> Format:
        return response_format(req)
