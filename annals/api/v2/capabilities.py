"""/v2/capabilities."""

from __future__ import annotations

import falcon

from annals.api import serializers
from annals.api.v2.base import Resource
from annals.storage.base import API_CAPABILITIES


class Capabilities(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        fmt = self.fmt(req)
        self.no_parameters(req)
        body = serializers.render_capabilities(
            API_CAPABILITIES, self.driver.storage_capabilities(), fmt
        )
        self.reply(req, resp, body, fmt)
