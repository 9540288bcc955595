"""Event definitions: loading (errors name the line), matching, traits, plugins. No broker."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from annals import config
from annals.ingest import definitions as d
from annals.ingest.notifications import Converter, Notification
from annals.models import TraitType
from tests.ingest.helpers import DEFINITIONS_FILE


def body(event_type: str = "test.thing", payload: Any = None, **ctxt: Any) -> dict[str, Any]:
    return {
        "ctxt": ctxt,
        "publisher_id": "svc.host-1.example.org",
        "event_type": event_type,
        "payload": payload if payload is not None else {},
        "metadata": {"message_id": "m-1", "timestamp": "2026-01-02 03:04:05.000006"},
    }


def convert(
    yaml_text: str, doc: dict[str, Any], drop_unmatched: bool = False
) -> dict[str, tuple[TraitType, Any]] | None:
    defs = d.Definitions(d.parse_definitions(yaml_text, "test.yaml"), drop_unmatched)
    event = Converter(defs).to_event(Notification("info", doc))
    return None if event is None else {t.name: (t.type, t.value) for t in event.traits}


def error_of(yaml_text: str) -> str:
    with pytest.raises(d.DefinitionError) as info:
        d.parse_definitions(yaml_text, "defs.yaml")
    return info.value.message


# --- start-up errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- event_type: a\n  traits:\n    x: [unclosed\n",
            "defs.yaml, line 4, column 1: invalid YAML",
        ),
        ("- event_type: a\n  traits:\n\tx: y\n", "defs.yaml, line 3, column 1: invalid YAML"),
        (
            "- event_type: a\n  traits:\n    x:\n      fields: payload.x\n      plugin: nope\n",
            "defs.yaml, line 5: trait 'x': unknown plugin 'nope' (available: bitfield, map, split, "
            "timedelta)",
        ),
        (
            "- event_type: a\n  traits: {}\n- event_type: b\n  traits:\n    x:\n      fields: p.x\n"
            "      plugin: {name: split, parameters: {segmnt: 1}}\n",
            "defs.yaml, line 7: trait 'x': plugin 'split' has no parameter 'segmnt' (it accepts: "
            "max_split, segment, separator)",
        ),
        (
            "- event_type: a\n  traits:\n    x: {fields: payload.x, type: integer}\n",
            "defs.yaml, line 3: trait 'x' has unknown type 'integer'",
        ),
        (
            "- event_type: a\n  traits:\n    x: {type: int}\n",
            "defs.yaml, line 3: trait 'x' has no 'fields'",
        ),
        (
            "- event_type: a\n  traits:\n    x: payload.[\n",
            "defs.yaml, line 3: trait 'x': invalid JSONPath 'payload.['",
        ),
        ("- traits: {}\n", "defs.yaml, line 1: definition has no 'event_type'"),
        ("- event_type: a\n", "defs.yaml, line 1: definition has no 'traits'"),
        ("- event_type: [1]\n  traits: {}\n", "defs.yaml, line 1: 'event_type' must be a pattern"),
        ("- event_type: a\n  traits: [x]\n", "defs.yaml, line 2: 'traits' must be a mapping"),
        ("event_type: a\n", "defs.yaml: must be a list of event definitions"),
        ("", "defs.yaml: no event definitions (the file is empty)"),
        (
            "- event_type: a\n  traits:\n    x: {fields: [1, 2]}\n",
            "defs.yaml, line 3: trait 'x': 'fields' must be a JSONPath string or a list of them",
        ),
        (
            "- event_type: a\n  traits:\n    x:\n      fields: p.x\n"
            "      plugin:\n        name: map\n",
            "defs.yaml, line 5: trait 'x': plugin 'map': parameter 'values' must be a non-empty",
        ),
        (
            "- event_type: a\n  traits:\n    '" + "n" * 256 + "': p.x\n",
            "defs.yaml, line 3: trait names must be strings of 1 to 255 characters",
        ),
    ],
)
def test_unusable_definitions_name_the_line(text: str, expected: str) -> None:
    assert error_of(text).startswith(expected)


def test_error_in_merged_anchor_names_the_anchor_line() -> None:
    text = (
        "- event_type: a\n  traits: &base\n    x: {fields: p.x, type: bogus}\n"
        "- event_type: b\n  traits:\n    <<: *base\n    y: p.y\n"
    )
    assert error_of(text).startswith("defs.yaml, line 3: trait 'x' has unknown type 'bogus'")


def test_shipped_definitions_load_and_cover_the_services() -> None:
    loaded = d.load_definitions(DEFINITIONS_FILE)
    defs = d.Definitions(loaded, drop_unmatched=True)
    for event_type in (
        "compute.instance.create.end",
        "compute.instance.delete.end",
        "compute.instance.update",
        "compute.instance.exists",
        "instance.create.end",
        "volume.create.end",
        "snapshot.delete.end",
        "backup.create.end",
        "network.create.end",
        "subnet.update.end",
        "port.create.end",
        "router.interface.create",
        "floatingip.update.end",
        "security_group.create.end",
        "image.upload",
        "image.send",
        "identity.authenticate",
        "identity.user.created",
        "identity.role_assignment.created",
        "orchestration.stack.create.end",
        "orchestration.autoscaling.end",
    ):
        assert defs.match(event_type) is not None, event_type
    assert defs.match("unknown.thing") is None


def test_file_lookup(tmp_path: Path, conf_factory: Any) -> None:
    conf = config.load([])
    packaged = d.find_definitions_file(conf)
    assert packaged.name == d.DEFAULT_FILE_NAME
    assert packaged.read_text() == DEFINITIONS_FILE.read_text()  # the shipped copy is etc's
    # Next to the configuration file wins over the packaged copy.
    (tmp_path / "event_definitions.yaml").write_text("- event_type: x\n  traits: {}\n")
    conf = config.load([str(conf_factory({"api": {}}))])
    assert d.find_definitions_file(conf) == tmp_path / "event_definitions.yaml"
    conf = config.load([str(conf_factory({"event": {"definitions_cfg_file": "/nope.yaml"}}))])
    with pytest.raises(d.DefinitionError, match=r"'/nope\.yaml' not found"):
        d.find_definitions_file(conf)


# --- matching --------------------------------------------------------------------------------

MATCHING = """
- event_type: '*'
  traits: {which: {fields: payload.none, type: int}}
- event_type: ['compute.instance.*', '!compute.instance.exists']
  traits: {which: {fields: payload.a}}
- event_type: '!image.*'
  traits: {which: {fields: payload.b}}
- event_type: ['volume.?.end', 'snap[0-9].*']
  traits: {which: {fields: payload.c}}
"""


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("volume.x.end", "c"),
        ("snap7.create", "c"),
        ("volume.xx.end", "b"),
        ("compute.instance.create.end", "b"),  # '!image.*' comes later and matches too
        ("image.upload", None),  # excluded by the last definition; the first one has no value
        ("Volume.x.end", "b"),  # globs are case-sensitive
    ],
)
def test_last_matching_definition_wins(event_type: str, expected: str | None) -> None:
    payload = {"a": "a", "b": "b", "c": "c"}
    traits = convert(MATCHING, body(event_type, payload))
    assert traits is not None
    assert traits.get("which") == (None if expected is None else (TraitType.STRING, expected))


def test_catch_all_and_drop_unmatched() -> None:
    only = "- event_type: compute.*\n  traits: {}\n"
    doc = body("image.upload", {"tenant_id": "p", "user_id": "u"}, request_id="r")
    assert convert(only, doc) == {
        "service": (TraitType.STRING, "svc.host-1.example.org"),
        "request_id": (TraitType.STRING, "r"),
        "project_id": (TraitType.STRING, "p"),
        "tenant_id": (TraitType.STRING, "p"),
        "user_id": (TraitType.STRING, "u"),
    }
    assert convert(only, doc, drop_unmatched=True) is None


# --- trait values ----------------------------------------------------------------------------

TRAITS = """
- event_type: test.thing
  traits:
    text: payload.text
    number: {fields: payload.number, type: int}
    ratio: {fields: payload.ratio, type: float}
    when: {fields: payload.when, type: datetime}
    first: {fields: [payload.missing, payload.nothing, payload.text, payload.number]}
    constant: {fields: 42, type: int}
    dotted: payload.meta.'org.openstack__1__arch'
    indexed: payload.items[1].name
    filtered: payload.pairs[?key=image_id].value
    host:
      fields: publisher_id.`split(., 1, 1)`
    service:
      fields: publisher_id.`split(., 0, -1)`
    listed: payload.items
    boolean: payload.flag
    nested_in_list: payload.items.name
    project_id: [payload.project, ctxt.project_id]
"""


def test_trait_values_follow_ceilometer() -> None:
    payload = {
        "text": "hello",
        "number": "12",
        "ratio": 2,
        "when": "2026-01-02T03:04:05+02:00",
        "nothing": None,
        "meta": {"org.openstack__1__arch": "x86_64"},
        "items": [{"name": "a"}, {"name": "b"}],
        "flag": True,
        "project": None,
        "pairs": [{"key": "x", "value": 1}, {"key": "image_id", "value": "img-1"}],
    }
    traits = convert(TRAITS, body("test.thing", payload, project_id="ctx-project"))
    assert traits is not None
    assert traits["text"] == (TraitType.STRING, "hello")
    assert traits["number"] == (TraitType.INTEGER, 12)
    assert traits["ratio"] == (TraitType.FLOAT, 2.0)
    assert traits["when"] == (TraitType.DATETIME, dt.datetime(2026, 1, 2, 1, 4, 5))
    assert traits["first"] == (TraitType.STRING, "hello")  # null matches are skipped
    assert traits["constant"] == (TraitType.INTEGER, 42)
    assert traits["dotted"] == (TraitType.STRING, "x86_64")
    assert traits["indexed"] == (TraitType.STRING, "b")
    assert traits["filtered"] == (TraitType.STRING, "img-1")
    assert traits["host"] == (TraitType.STRING, "host-1.example.org")
    assert traits["service"] == (TraitType.STRING, "svc")
    assert traits["listed"] == (TraitType.STRING, "[{'name': 'a'}, {'name': 'b'}]")  # repr
    assert traits["boolean"] == (TraitType.STRING, "True")
    assert "nested_in_list" not in traits  # a field of a list matches nothing
    assert traits["project_id"] == (TraitType.STRING, "ctx-project")


def test_text_is_cut_at_255_and_empty_values() -> None:
    text = "- event_type: t\n  traits:\n    s: payload.s\n    n: {fields: payload.n, type: int}\n"
    traits = convert(text, body("t", {"s": "é" * 300, "n": ""}))
    assert traits is not None
    assert traits["s"] == (TraitType.STRING, "é" * 255)
    assert "n" not in traits  # '' is "no value" for every type but text
    traits = convert(text, body("t", {"s": ""}))
    assert traits is not None and traits["s"] == (TraitType.STRING, "")


# --- plugins ---------------------------------------------------------------------------------

PLUGINS = """
- event_type: test.thing
  traits:
    split_default:
      fields: payload.host
      plugin: split
    split_segment:
      fields: payload.host
      plugin: {name: split, parameters: {separator: '-', segment: 1, max_split: 1}}
    split_out_of_range:
      fields: payload.host
      plugin: {name: split, parameters: {segment: 9}}
    flags:
      type: int
      fields: [payload.state, payload.meta.'a.b', payload.missing]
      plugin:
        name: bitfield
        parameters:
          initial_bitfield: 1
          flags:
            - {path: payload.state, bit: 1, value: active}
            - {path: payload.meta.a.b, bit: 2}
            - {path: payload.missing, bit: 3}
            - {path: payload.state, bit: 4, value: deleted}
    took:
      type: float
      fields: [payload.created_at, payload.launched_at]
      plugin: timedelta
    took_one_field:
      type: float
      fields: payload.created_at
      plugin: timedelta
    mapped:
      fields: payload.state
      plugin: {name: map, parameters: {values: {ACTIVE: up}, case_sensitive: false}}
    mapped_default:
      fields: payload.host
      plugin: {name: map, parameters: {values: {x: y}, default: other}}
    mapped_none:
      fields: payload.host
      plugin: {name: map, parameters: {values: {x: y}}}
"""


def test_plugins() -> None:
    payload = {
        "host": "compute-3.example.org",
        "state": "active",
        "meta": {"a.b": 0},
        "created_at": "2026-01-01T00:00:00",
        "launched_at": "2026-01-01T00:01:30.5",
    }
    traits = convert(PLUGINS, body("test.thing", payload))
    assert traits is not None
    assert traits["split_default"] == (TraitType.STRING, "compute-3")
    assert traits["split_segment"] == (TraitType.STRING, "3.example.org")
    assert "split_out_of_range" not in traits
    assert traits["flags"] == (TraitType.INTEGER, 1 | 2 | 4)
    assert traits["took"] == (TraitType.FLOAT, 90.5)
    assert "took_one_field" not in traits
    assert traits["mapped"] == (TraitType.STRING, "up")
    assert traits["mapped_default"] == (TraitType.STRING, "other")
    assert "mapped_none" not in traits


def test_a_failing_trait_costs_only_itself() -> None:
    text = (
        "- event_type: t\n  traits:\n    n: {fields: payload.n, type: int}\n"
        "    d: {fields: payload.d, type: datetime}\n    f: {fields: payload.f, type: float}\n"
        "    big: {fields: payload.big, type: int}\n    ok: payload.ok\n"
        "    nul: payload.nul\n    t: {fields: payload.t, type: float}\n"
    )
    payload = {
        "n": "abc",
        "d": "not a date",
        "f": "nan",
        "big": 2**63,
        "ok": "fine",
        "nul": "a\x00b",
        "t": {"x": 1},
    }
    traits = convert(text, body("t", payload))
    assert traits is not None
    assert {k: v for k, v in traits.items() if k in payload} == {"ok": (TraitType.STRING, "fine")}
