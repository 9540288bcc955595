"""The WSGI application: routes, error handlers and the middleware stack, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import falcon
from falcon.routing import CompiledRouter
from oslo_config import cfg
from oslo_middleware import cors, http_proxy_to_wsgi, request_id

from annals import errors
from annals.api import errors as api_errors
from annals.api.logging import RequestObserver
from annals.api.metrics import MeteredDriver, Metrics, MetricsResource
from annals.api.middleware import (
    BodyLimit,
    KeystoneIdentity,
    NoAuthIdentity,
    PublisherBasicAuth,
    Utf8Path,
)
from annals.api.negotiation import NotAcceptable
from annals.api.openapi import OpenAPIResource
from annals.api.root import Health, Versions
from annals.api.v2 import capabilities, event_types, events
from annals.api.v2.base import Settings
from annals.policy import Policy
from annals.storage.base import StorageDriver

WSGIApp = Any  # a PEP 3333 application; the middleware classes are untyped


def create_falcon_app(
    driver: StorageDriver,
    settings: Settings,
    body_limit: int = 10 * 1024 * 1024,
    publisher_credentials: Sequence[str] = (),
    auth_mode: str = "noauth",
    *,
    metrics: Metrics | None = None,
    access_log: bool = True,
) -> falcon.App[Any, Any]:
    identity = KeystoneIdentity() if auth_mode == "keystone" else NoAuthIdentity()
    if metrics is not None:
        driver = MeteredDriver(driver, metrics)
    router = CompiledRouter()
    middleware: list[Any] = [
        RequestObserver(metrics, access_log, router),
        Utf8Path(),
        PublisherBasicAuth(publisher_credentials),
        identity,
        BodyLimit(body_limit),
    ]
    app: falcon.App[Any, Any] = falcon.App(middleware=middleware, router=router, cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_form_urlencoded = False

    def res(cls: type[Any]) -> Any:
        return cls(driver, settings)

    app.add_route("/", Versions())
    app.add_route("/healthcheck", Health(driver))
    app.add_route("/v2/openapi.json", OpenAPIResource(auth_mode, metrics is not None))
    if metrics is not None:
        app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/v2/capabilities", res(capabilities.Capabilities))
    app.add_route("/v2/events", res(events.Events))
    app.add_route("/v2/events/{message_id}", res(events.Event))
    app.add_route("/v2/event_types", res(event_types.EventTypes))
    app.add_route("/v2/event_types/{event_type}", res(event_types.EventType))
    app.add_route("/v2/event_types/{event_type}/traits", res(event_types.TraitDescriptions))
    app.add_route("/v2/event_types/{event_type}/traits/{trait_name}", res(event_types.TraitValues))

    app.add_error_handler(Exception, api_errors.handle_unexpected)
    app.add_error_handler(errors.AnnalsError, api_errors.handle_domain)
    app.add_error_handler(NotAcceptable, api_errors.handle_not_acceptable)
    app.set_error_serializer(api_errors.serialize_http_error)
    return app


def create_app(conf: cfg.ConfigOpts, driver: StorageDriver) -> WSGIApp:
    """The full stack, outermost first: proxy headers, request id, CORS, (with auth_mode =
    keystone) keystonemiddleware's auth_token, then the API."""
    settings = Settings(
        default_limit=conf.api.default_api_return_limit,
        max_limit=conf.api.max_api_return_limit,
        max_filters=conf.api.max_query_filters,
        policy=Policy(conf),
    )
    auth_mode: str = conf.api.auth_mode
    wsgi: WSGIApp = create_falcon_app(
        driver,
        settings,
        conf.api.max_request_body_size,
        conf.api.publisher_credentials,
        auth_mode,
        metrics=Metrics() if conf.api.enable_metrics else None,
        access_log=conf.api.access_log,
    )
    if auth_mode == "keystone":
        wsgi = keystone_auth_token(wsgi, conf)
    wsgi = cors.CORS(wsgi, conf)
    wsgi = request_id.RequestId(wsgi)
    wsgi = http_proxy_to_wsgi.HTTPProxyToWSGI(wsgi, conf)
    return wsgi


def keystone_auth_token(app: WSGIApp, conf: cfg.ConfigOpts) -> WSGIApp:
    """keystonemiddleware's auth_token around ``app``, configured from ``[keystone_authtoken]``
    of the same configuration.

    ``delay_auth_decision`` is forced on: requests without a valid token reach Annals,
    which answers 401 itself (in its error format) on every path but / and /healthcheck, and
    lets HTTP Basic publishers through to ``POST /v2/events``. auth_token still removes the
    identity headers a client sent and adds ``WWW-Authenticate`` to every 401.
    """
    from keystonemiddleware import auth_token  # noqa: PLC0415 - only in keystone mode

    return auth_token.AuthProtocol(app, {"oslo_config_config": conf, "delay_auth_decision": True})
