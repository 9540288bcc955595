"""/v2/events and /v2/events/{message_id}."""

from __future__ import annotations

import logging
from dataclasses import replace

import falcon

from annals import policy, query
from annals.api import params as request_params
from annals.api import serializers
from annals.api.v2.base import Resource
from annals.errors import InvalidQuery, NotFound
from annals.ingest.events import parse_body

LOG = logging.getLogger(__name__)


class Events(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        fmt = self.fmt(req)
        creds = self.credentials(req)
        rules = self.settings.policy
        policy.authorize(policy.EVENTS_INDEX, creds, rules)
        scope = policy.event_scope(creds, rules)  # as in Panko, a 403 comes before any 400
        got = request_params.event_list_params(req.query_string, req.context.body, req.content_type)
        if len(got.conditions) > self.settings.max_filters:
            raise InvalidQuery(
                f"Too many filters: {len(got.conditions)} (at most {self.settings.max_filters} "
                "per request)"
            )
        request_params.check_mandatory(got.conditions)
        parsed = query.build_query(got.conditions)
        scoped = policy.scope_query(parsed, creds, rules, scope)
        scoped = replace(
            scoped,
            limit=query.parse_limit(
                got.limit, self.settings.default_limit, self.settings.max_limit
            ),
            sort=query.parse_sort(got.sort),
            marker=query.check_marker(got.marker),
        )
        events = self.driver.get_events(scoped)
        if len(events) <= serializers.EVENTS_PER_CHUNK:
            self.reply(req, resp, serializers.render_events(events, fmt), fmt)
            return
        # A large page (10,000 events are ~17 MB of JSON) is rendered while it is sent, a
        # few hundred events at a time, never whole in memory. The storage call has returned
        # the complete page: every database error comes before the status is sent.
        self.reply_stream(req, resp, serializers.stream_events(events, fmt), fmt)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Record events sent by Ceilometer's http:// event publisher (or anyone alike)."""
        fmt = self.fmt(req)
        creds = self.credentials(req)
        policy.authorize(policy.EVENTS_CREATE, creds, self.settings.policy)
        self.no_parameters(req)
        body: bytes = req.context.body
        mime = (req.content_type or "").split(";")[0].strip().lower()
        if mime != "application/json":
            raise request_params.UnsupportedMediaType(f"Unknown mimetype: {mime}")
        events = parse_body(body)
        result = self.driver.record_events(events)
        LOG.info("recorded %d events (%d duplicates)", result.stored, len(result.duplicates))
        doc = {
            "stored": result.stored,
            "duplicates": len(result.duplicates),
            "duplicate_message_ids": list(result.duplicates),
        }
        self.reply(req, resp, serializers.render(doc, fmt), fmt, status=201)


class Event(Resource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, message_id: str) -> None:
        fmt = self.fmt(req)
        creds = self.credentials(req)
        rules = self.settings.policy
        policy.authorize(policy.EVENTS_SHOW, creds, rules)
        scope = policy.event_scope(creds, rules)
        self.no_parameters(req)
        found = (
            self.driver.get_events(query.EventQuery(message_id=message_id, scope=scope, limit=1))
            if "\x00" not in message_id
            else []
        )
        if not found:
            raise NotFound(f"Event {message_id} Not Found")
        self.reply(req, resp, serializers.render_event(found[0], fmt), fmt)
