"""Choosing JSON or XML from the Accept header, as Panko did."""

from __future__ import annotations

import falcon

from annals.api.serializers import Format

_OFFERS = {
    "application/json": Format.JSON,
    "application/xml": Format.XML,
    "text/xml": Format.TEXT_XML,
}


class NotAcceptable(Exception):
    """The client accepts neither JSON nor XML (406)."""

    def __init__(self, accept: str) -> None:
        super().__init__(accept)
        self.accept = accept


def response_format(req: falcon.Request, xml_allowed: bool = True) -> Format:
    """JSON when Accept is absent or ``*/*``; XML when preferred; else NotAcceptable."""
    accept = req.get_header("Accept")
    if not accept or accept.strip() in ("*/*", "*"):
        return Format.JSON
    offers = list(_OFFERS) if xml_allowed else ["application/json"]
    # Listed JSON last: on a tie (e.g. "*/*;q=0.5") Falcon picks the last offer.
    chosen = req.client_prefers([*offers[1:], offers[0]])
    if chosen is None:
        raise NotAcceptable(accept)
    return _OFFERS[chosen]


def error_format(req: falcon.Request) -> Format:
    """Errors follow Accept too, but never fail negotiation themselves."""
    try:
        return response_format(req)
    except NotAcceptable:
        return Format.JSON
