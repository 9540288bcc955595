"""/v2/event_types and the trait descriptions and values below it."""

from __future__ import annotations

import falcon

from annals import policy
from annals.api import serializers
from annals.api.v2.base import Resource
from annals.errors import NotFound
from annals.query import Scope


class EventTypes(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        fmt = self.fmt(req)
        policy.require_admin(self.credentials(req))
        self.no_parameters(req)
        names = self.driver.get_event_types(Scope.everything())
        self.reply(req, resp, serializers.render(names, fmt), fmt)


class EventType(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, event_type: str) -> None:
        """Unused in Panko: always 404."""
        self.fmt(req)
        policy.require_admin(self.credentials(req))
        raise NotFound("The resource could not be found.")


class TraitDescriptions(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, event_type: str) -> None:
        fmt = self.fmt(req)
        policy.require_admin(self.credentials(req))
        self.no_parameters(req)
        descs = self.driver.get_trait_types(event_type, Scope.everything())
        self.reply(req, resp, serializers.render_trait_descriptions(descs, fmt), fmt)


class TraitValues(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, event_type: str,
               trait_name: str) -> None:
        fmt = self.fmt(req)
        policy.require_admin(self.credentials(req))
        self.no_parameters(req)
        traits = self.driver.get_traits(event_type, trait_name, Scope.everything())
        self.reply(req, resp, serializers.render_traits(traits, fmt), fmt)
