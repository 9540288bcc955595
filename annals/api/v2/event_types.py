"""/v2/event_types and the trait descriptions and values below it."""

from __future__ import annotations

import falcon

from annals import policy
from annals.api import serializers
from annals.api.v2.base import Resource
from annals.errors import InvalidQuery, NotFound
from annals.query import Scope


class MetadataResource(Resource):
    """Event types and traits: by default for unrestricted callers only (401 otherwise);
    a caller a custom policy lets in sees only what its own events carry."""

    def scope(self, req: falcon.Request, rule: str, *names: str) -> Scope:
        scope = policy.metadata_scope(rule, self.credentials(req), self.settings.policy)
        if any("\x00" in name for name in names):
            # Stored names never hold NUL (ingestion refuses it) and PostgreSQL cannot
            # compare it: refuse rather than pass it to the database.
            raise InvalidQuery("Names of event types and traits cannot contain NUL characters")
        return scope


class EventTypes(MetadataResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        fmt = self.fmt(req)
        scope = self.scope(req, policy.EVENT_TYPES_INDEX)
        self.no_parameters(req)
        names = self.driver.get_event_types(scope)
        self.reply(req, resp, serializers.render(names, fmt), fmt)


class EventType(MetadataResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, event_type: str) -> None:
        """Unused in Panko: always 404."""
        self.fmt(req)
        self.scope(req, policy.EVENT_TYPES_INDEX)
        raise NotFound("The resource could not be found.")


class TraitDescriptions(MetadataResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, event_type: str) -> None:
        fmt = self.fmt(req)
        scope = self.scope(req, policy.TRAITS_INDEX, event_type)
        self.no_parameters(req)
        descs = self.driver.get_trait_types(event_type, scope)
        self.reply(req, resp, serializers.render_trait_descriptions(descs, fmt), fmt)


class TraitValues(MetadataResource):
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, event_type: str, trait_name: str
    ) -> None:
        fmt = self.fmt(req)
        scope = self.scope(req, policy.TRAITS_INDEX, event_type, trait_name)
        self.no_parameters(req)
        traits = list(self.driver.get_traits(event_type, trait_name, scope))
        if len(traits) <= serializers.TRAITS_PER_CHUNK:
            self.reply(req, resp, serializers.render_traits(traits, fmt), fmt)
            return
        # Unpaginated (as in Panko): a large answer is rendered while it is sent, never whole
        # in memory; every database error has come before the status is sent.
        self.reply_stream(req, resp, serializers.stream_traits(traits, fmt), fmt)
