"""The version document at / and the health check."""

from __future__ import annotations

import falcon
import orjson

from annals.api.negotiation import response_format
from annals.errors import AnnalsError
from annals.storage.base import StorageDriver


class Versions:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        response_format(req, xml_allowed=False)
        base = req.prefix.rstrip("/")
        doc = {
            "versions": {
                "values": [
                    {
                        "id": "v2",
                        "links": [
                            {"href": f"{base}/v2", "rel": "self"},
                            {
                                "href": "https://docs.openstack.org/",
                                "rel": "describedby",
                                "type": "text/html",
                            },
                        ],
                        "media-types": [
                            {
                                "base": "application/json",
                                "type": "application/vnd.openstack.telemetry-v2+json",
                            },
                            {
                                "base": "application/xml",
                                "type": "application/vnd.openstack.telemetry-v2+xml",
                            },
                        ],
                        "status": "stable",
                        "updated": "2013-02-13T00:00:00Z",
                    }
                ]
            }
        }
        resp.content_type = "application/json"
        resp.data = orjson.dumps(doc)

    # Panko answered the version document to any method; load balancers probe with HEAD.
    on_head = on_post = on_put = on_delete = on_patch = on_get


class Health:
    """``GET|HEAD /healthcheck``: 200 when the database answers, 503 otherwise."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/plain"
        try:
            self.driver.ping()
        except AnnalsError as exc:
            resp.status = 503
            resp.text = f"database unavailable: {exc.message}"
            return
        resp.text = "OK"

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.on_get(req, resp)
        resp.text = None
