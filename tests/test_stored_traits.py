"""StoredTraits: an event's trait documents as storage keeps them, decoded on demand."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from annals.api import serializers
from annals.models import (
    BY_NAME_AND_TYPE,
    Event,
    StoredTraits,
    Trait,
    TraitType,
    encode_traits,
    trait_doc,
)

TRAITS = (
    Trait("b", TraitType.STRING, "x"),
    Trait("a", TraitType.INTEGER, -(2**63)),
    Trait("a", TraitType.STRING, "same name, other type"),
    Trait("c", TraitType.FLOAT, 1e-7),
    Trait("d", TraitType.FLOAT, 2.5),
    Trait("e", TraitType.DATETIME, dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
    Trait("f", TraitType.DATETIME, dt.datetime(2024, 1, 2)),
    Trait("ü", TraitType.STRING, '\u2028 "q" \\ \x01'),
)
ORDERED = tuple(sorted(TRAITS, key=BY_NAME_AND_TYPE))


def test_encode_writes_the_api_documents_in_order() -> None:
    text = encode_traits(TRAITS)
    assert orjson.loads(text) == [trait_doc(t) for t in ORDERED]
    assert [d["name"] for d in orjson.loads(text)] == ["a", "a", "b", "c", "d", "e", "f", "ü"]
    assert orjson.loads(text)[:2] == [
        {"name": "a", "value": "same name, other type", "type": "string"},
        {"name": "a", "value": str(-(2**63)), "type": "integer"},
    ]
    assert orjson.loads(text)[5]["value"] == "2024-01-02T03:04:05.000006"
    assert orjson.loads(text)[6]["value"] == "2024-01-02T00:00:00"
    assert encode_traits(()) == "[]"


def test_decodes_to_the_same_traits_and_types() -> None:
    stored = StoredTraits(encode_traits(TRAITS))
    assert tuple(stored) == ORDERED
    for got, want in zip(stored, ORDERED, strict=True):
        assert type(got.value) is type(want.value)
        assert got.type is want.type
    assert len(stored) == len(TRAITS)
    assert stored[0] == ORDERED[0]
    assert stored[-1] == ORDERED[-1]
    assert stored[1:3] == ORDERED[1:3]


def test_compares_like_a_sequence_of_its_traits() -> None:
    stored = StoredTraits(encode_traits(TRAITS))
    assert stored == ORDERED
    assert ORDERED.__eq__(stored) is NotImplemented  # tuple on the left: reflected
    in_tuples: tuple[object, ...] = (ORDERED,)
    assert in_tuples == (stored,)
    assert stored == list(ORDERED)
    assert stored == StoredTraits(encode_traits(ORDERED))
    assert stored != ORDERED[:-1]
    assert stored != TRAITS  # order matters
    assert stored != "not traits"
    assert hash(stored) == hash(ORDERED)
    assert "Trait(name='a'" in repr(stored)
    generated = dt.datetime(2024, 1, 1)
    assert Event("m", "t", generated, ORDERED) == Event("m", "t", generated, stored)


def test_a_json_page_copies_the_text_without_decoding() -> None:
    stored = StoredTraits(encode_traits(TRAITS))
    event = Event("m", "t", dt.datetime(2024, 1, 1), stored, {"k": 1})
    body = serializers.render_events([event], serializers.Format.JSON)
    assert stored._items is None  # never decoded
    plain = Event("m", "t", dt.datetime(2024, 1, 1), ORDERED, {"k": 1})
    assert body == serializers.render_events([plain], serializers.Format.JSON)
    assert serializers.render_events([event], serializers.Format.XML) == (
        serializers.render_events([plain], serializers.Format.XML)
    )


@pytest.mark.parametrize("bad", ["not json", '[{"name": "a", "value": "1", "type": "nope"}]'])
def test_a_corrupt_document_fails_when_decoded(bad: str) -> None:
    stored = StoredTraits(bad)  # storage's own text: checked when it is read, not before
    with pytest.raises((orjson.JSONDecodeError, KeyError)):
        list(stored)
