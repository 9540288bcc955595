"""The WSGI application: routes, error handlers and the middleware stack, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import falcon
from oslo_config import cfg
from oslo_middleware import cors, http_proxy_to_wsgi, request_id

from annals import errors
from annals.api import errors as api_errors
from annals.api.middleware import BodyLimit, NoAuthIdentity, PublisherBasicAuth
from annals.api.negotiation import NotAcceptable
from annals.api.root import Health, Versions
from annals.api.v2 import capabilities, event_types, events
from annals.api.v2.base import Settings
from annals.storage.base import StorageDriver

WSGIApp = Any  # a PEP 3333 application; the middleware classes are untyped


def create_falcon_app(driver: StorageDriver, settings: Settings,
                      body_limit: int = 10 * 1024 * 1024,
                      publisher_credentials: Sequence[str] = ()) -> falcon.App[Any, Any]:
    middleware: list[Any] = [
        NoAuthIdentity(),
        PublisherBasicAuth(publisher_credentials),
        BodyLimit(body_limit),
    ]
    app: falcon.App[Any, Any] = falcon.App(middleware=middleware, cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_form_urlencoded = False

    def res(cls: type[Any]) -> Any:
        return cls(driver, settings)

    app.add_route("/", Versions())
    app.add_route("/healthcheck", Health(driver))
    app.add_route("/v2/capabilities", res(capabilities.Capabilities))
    app.add_route("/v2/events", res(events.Events))
    app.add_route("/v2/events/{message_id}", res(events.Event))
    app.add_route("/v2/event_types", res(event_types.EventTypes))
    app.add_route("/v2/event_types/{event_type}", res(event_types.EventType))
    app.add_route("/v2/event_types/{event_type}/traits", res(event_types.TraitDescriptions))
    app.add_route("/v2/event_types/{event_type}/traits/{trait_name}",
                  res(event_types.TraitValues))

    app.add_error_handler(Exception, api_errors.handle_unexpected)
    app.add_error_handler(errors.AnnalsError, api_errors.handle_domain)
    app.add_error_handler(NotAcceptable, api_errors.handle_not_acceptable)
    app.set_error_serializer(api_errors.serialize_http_error)
    return app


def create_app(conf: cfg.ConfigOpts, driver: StorageDriver) -> WSGIApp:
    """The full stack, outermost first: proxy headers, request id, CORS, then the API."""
    settings = Settings(
        default_limit=conf.api.default_api_return_limit,
        max_limit=conf.api.max_api_return_limit,
    )
    wsgi: WSGIApp = create_falcon_app(driver, settings, conf.api.max_request_body_size,
                                      conf.api.publisher_credentials)
    wsgi = cors.CORS(wsgi, conf)
    wsgi = request_id.RequestId(wsgi)
    wsgi = http_proxy_to_wsgi.HTTPProxyToWSGI(wsgi, conf)
    return wsgi
