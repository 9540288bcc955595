"""Event definitions in Ceilometer's ``event_definitions.yaml`` format.

A definitions file is a list of ``{event_type, traits}`` entries. ``event_type`` is a shell glob
or a list of them, ``!`` marking exclusions; the **last** matching entry wins. Each trait is a
JSONPath string, or ``{fields, type, plugin}`` with ``fields`` one path or a list of paths
(the first non-null match wins) and ``type`` text, int, float or datetime. Every definition
starts from the default traits (service, request_id, project_id, tenant_id, user_id).

Everything that can be checked is checked at load time, and errors name the file and line:
a definitions file that cannot be used stops the consumer before it reads a message.

JSONPath dialect: jsonpath-ng's extended parser, which descends from the jsonpath-rw-ext
parser Ceilometer uses (dotted and quoted fields, indexes, ``[?key=value]`` filters, the
``split``/``sub`` named operators). A list of ``fields`` is evaluated path by path, in order,
which is what Ceilometer's ``(p1)|(p2)`` union does.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonpath_ng import JSONPath
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from jsonpath_ng.jsonpath import Child, DatumInContext, Fields, Root
from oslo_config import cfg

from annals.errors import AnnalsError
from annals.ingest.plugins import PluginError, TraitPlugin, make_plugin
from annals.models import NAME_LENGTH, TraitType

LOG = logging.getLogger(__name__)

DEFAULT_FILE_NAME = "event_definitions.yaml"

#: ``type`` names accepted in a trait definition (case-insensitive, as Ceilometer's lookup).
TYPE_NAMES: dict[str, TraitType] = {
    "text": TraitType.STRING,
    "none": TraitType.STRING,
    "int": TraitType.INTEGER,
    "float": TraitType.FLOAT,
    "datetime": TraitType.DATETIME,
}

#: Added to every definition first; a trait of the same name in the definition replaces them.
DEFAULT_TRAITS: dict[str, Any] = {
    "service": {"type": "text", "fields": "publisher_id"},
    "request_id": {"type": "text", "fields": "ctxt.request_id"},
    "project_id": {"type": "text", "fields": ["payload.tenant_id", "ctxt.project_id"]},
    "user_id": {"type": "text", "fields": ["payload.user_id", "ctxt.user_id"]},
    "tenant_id": {"type": "text", "fields": ["payload.tenant_id", "ctxt.project_id"]},
}


class DefinitionError(AnnalsError):
    """The event definitions cannot be used; the message names the file and line."""


# --- YAML with line numbers ----------------------------------------------------------------


class _LineDict(dict[Any, Any]):
    """A mapping that remembers the line it starts on and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    """safe_load (merge keys included) that records lines for error messages."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterable[_LineDict]:
    data = _LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    data.update(loader.construct_mapping(node))  # flattens << merge keys into node.value
    for key_node, _value in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            data.key_lines.setdefault(key_node.value, key_node.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


# --- JSONPath ------------------------------------------------------------------------------

_PARSED: dict[str, JSONPath] = {}


def _parse_path(text: str) -> JSONPath:
    expr = _PARSED.get(text)
    if expr is None:
        with warnings.catch_warnings():
            # jsonpath-ng 1.x warns about [?key=word] filters, the syntax of every existing
            # definitions file; the dependency is pinned below 2.0, which drops it.
            warnings.simplefilter("ignore", DeprecationWarning)
            expr = jsonpath_parse(text)
        _PARSED[text] = expr
    return expr


def _path_text(match: DatumInContext) -> str:
    """Dotted text of a match, as Ceilometer hands it to plugins (no quotes around fields)."""
    parts: list[str] = []
    node: DatumInContext | None = match
    while node is not None and node.context is not None:
        path = node.path
        parts.append(",".join(path.fields) if isinstance(path, Fields) else str(path))
        node = node.context
    return ".".join(reversed(parts))


def _simple_keys(expr: JSONPath) -> list[str] | None:
    """``a.b.'c.d'`` as ["a", "b", "c.d"]; None for anything but plain field names."""
    if isinstance(expr, Child):
        left, right = _simple_keys(expr.left), _simple_keys(expr.right)
        return None if left is None or right is None or right == [] else left + right
    if isinstance(expr, Root):
        return []
    if isinstance(expr, Fields) and len(expr.fields) == 1 and expr.fields[0] != "*":
        return [expr.fields[0]]
    return None


#: A compiled ``fields`` entry: the keys of a plain dotted path (looked up in the dicts
#: directly: the JSONPath engine's result, several times faster), or a JSONPath expression.
Finder = tuple[str, ...] | JSONPath


def _finder(path: str) -> Finder:
    expr = _parse_path(path)
    keys = _simple_keys(expr)
    return tuple(keys) if keys else expr


def _lookup(keys: tuple[str, ...], body: Any) -> Any:
    value = body
    for key in keys:
        if not isinstance(value, dict):
            return None  # a field of a non-object matches nothing
        value = value.get(key)
        if value is None:
            return None
    return value


def _first_value(finders: Sequence[Finder], body: Any) -> Any:
    """The first non-null match of the paths, in order (Ceilometer's union of the paths)."""
    for finder in finders:
        if isinstance(finder, tuple):
            value = _lookup(finder, body)
            if value is not None:
                return value
        else:
            for match in finder.find(body):
                if match.value is not None:
                    return match.value
    return None


def _all_matches(finders: Sequence[Finder], body: Any) -> list[tuple[str, Any]]:
    """Every non-null match as (path text, value), what plugins receive."""
    found: list[tuple[str, Any]] = []
    for finder in finders:
        if isinstance(finder, tuple):
            value = _lookup(finder, body)
            if value is not None:
                found.append((".".join(finder), value))
        else:
            found.extend((_path_text(m), m.value) for m in finder.find(body) if m.value is not None)
    return found


# --- definitions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TraitDefinition:
    name: str
    type: TraitType
    finders: tuple[Finder, ...] = ()
    constant: int | None = None
    plugin: TraitPlugin | None = None

    def extract(self, body: Any) -> Any:
        """The raw value of this trait in a notification body, or None (no trait)."""
        if not self.finders:
            return self.constant
        if self.plugin is not None:
            values = self.plugin.trait_values(_all_matches(self.finders, body))
            return next((v for v in values if v is not None), None)
        return _first_value(self.finders, body)


@dataclass(frozen=True)
class EventDefinition:
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    traits: dict[str, TraitDefinition]
    line: int = 0
    _include_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _exclude_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One compiled regex per side: fnmatch semantics (case-sensitive, *, ?, [..]).
        object.__setattr__(self, "_include_re", _globs_regex(self.includes))
        object.__setattr__(
            self, "_exclude_re", _globs_regex(self.excludes) if self.excludes else None
        )

    @property
    def is_catchall(self) -> bool:
        return "*" in self.includes and not self.excludes

    def matches(self, event_type: str) -> bool:
        if not self._include_re.match(event_type):
            return False
        return self._exclude_re is None or not self._exclude_re.match(event_type)


def _globs_regex(globs: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


class Definitions:
    """Matches an event type to its definition (last matching entry of the file wins)."""

    CACHE_SIZE = 10_000

    def __init__(self, definitions: Sequence[EventDefinition], drop_unmatched: bool) -> None:
        self.definitions = list(reversed(definitions))
        if not drop_unmatched and not any(d.is_catchall for d in self.definitions):
            self.definitions.append(_event_definition({"event_type": "*", "traits": {}}, "-"))
        self._cache: dict[str, EventDefinition | None] = {}

    def match(self, event_type: str) -> EventDefinition | None:
        try:
            return self._cache[event_type]
        except KeyError:
            pass
        found = next((d for d in self.definitions if d.matches(event_type)), None)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[event_type] = found
        return found


def _where(source: str, line: int) -> str:
    return f"{source}, line {line}" if line else source


def _trait_definition(name: Any, spec: Any, source: str, line: int) -> TraitDefinition:
    where = _where(source, line)

    def at(key: str) -> str:  # the line of one key of the trait's mapping
        return _where(source, spec.line_of(key)) if isinstance(spec, _LineDict) else where

    if not isinstance(name, str) or not name or len(name) > NAME_LENGTH or "\x00" in name:
        raise DefinitionError(
            f"{where}: trait names must be strings of 1 to {NAME_LENGTH} characters, not {name!r}"
        )
    type_name: Any = "text"
    plugin: TraitPlugin | None = None
    if isinstance(spec, dict):
        if "fields" not in spec:
            raise DefinitionError(f"{where}: trait '{name}' has no 'fields'")
        fields = spec["fields"]
        type_name = spec.get("type", "text")
        if "plugin" in spec:
            plugin = _plugin(name, spec["plugin"], at("plugin"))
    else:
        fields = spec
    trait_type = TYPE_NAMES.get(type_name.lower()) if isinstance(type_name, str) else None
    if trait_type is None:
        raise DefinitionError(
            f"{at('type')}: trait '{name}' has unknown type {type_name!r} "
            "(expected text, int, float or datetime)"
        )
    if isinstance(fields, list) and len(fields) == 1:
        fields = fields[0]
    if isinstance(fields, int) and not isinstance(fields, bool):
        return TraitDefinition(name, trait_type, constant=fields)
    paths = [fields] if isinstance(fields, str) else fields
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise DefinitionError(
            f"{at('fields')}: trait '{name}': 'fields' must be a JSONPath "
            f"string or a list of them, not {fields!r}"
        )
    for path in paths:
        try:
            _parse_path(path)
        except Exception as exc:  # the parser raises bare Exceptions on syntax errors
            raise DefinitionError(
                f"{at('fields')}: trait '{name}': invalid JSONPath {path!r}: {exc}"
            ) from None
    return TraitDefinition(name, trait_type, tuple(_finder(p) for p in paths), plugin=plugin)


def _plugin(trait: str, spec: Any, where: str) -> TraitPlugin:
    params: Any
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
        name, params = spec["name"], spec.get("parameters") or {}
    else:
        raise DefinitionError(
            f"{where}: trait '{trait}': 'plugin' must be a name or "
            "{name: ..., parameters: {...}}"
        )
    if not isinstance(params, dict):
        raise DefinitionError(f"{where}: trait '{trait}': plugin parameters must be a mapping")
    try:
        return make_plugin(name, params)
    except PluginError as exc:
        raise DefinitionError(f"{where}: trait '{trait}': {exc}") from None


def _event_definition(entry: Any, source: str) -> EventDefinition:
    line = entry.line if isinstance(entry, _LineDict) else 0
    where = _where(source, line)
    if not isinstance(entry, dict):
        raise DefinitionError(
            f"{where}: each definition must be a mapping with 'event_type' "
            f"and 'traits', not {entry!r}"
        )
    for key in ("event_type", "traits"):
        if key not in entry:
            raise DefinitionError(f"{where}: definition has no '{key}'")
    event_types = entry["event_type"]
    if isinstance(event_types, str):
        event_types = [event_types]
    if (
        not isinstance(event_types, list)
        or not event_types
        or not all(isinstance(t, str) and t for t in event_types)
    ):
        raise DefinitionError(
            f"{_where(source, _line_of(entry, 'event_type'))}: 'event_type' "
            "must be a pattern or a list of patterns"
        )
    includes = [t for t in event_types if not t.startswith("!")]
    excludes = [t[1:] for t in event_types if t.startswith("!")]
    if excludes and not includes:
        includes.append("*")
    traits_spec = entry["traits"]
    if traits_spec is None:
        traits_spec = {}
    if not isinstance(traits_spec, dict):
        raise DefinitionError(
            f"{_where(source, _line_of(entry, 'traits'))}: 'traits' must be "
            "a mapping of trait name to definition"
        )
    traits = {
        name: _trait_definition(name, spec, "default traits", 0)
        for name, spec in DEFAULT_TRAITS.items()
    }
    for name, spec in traits_spec.items():
        traits[name] = _trait_definition(name, spec, source, _line_of(traits_spec, name))
    return EventDefinition(tuple(includes), tuple(excludes), traits, line)


def _line_of(mapping: Any, key: Any) -> int:
    return mapping.line_of(key) if isinstance(mapping, _LineDict) else 0


def parse_definitions(text: str, source: str) -> list[EventDefinition]:
    """Definitions from YAML text; DefinitionError naming ``source`` and the line."""
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        raise DefinitionError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{source}: invalid YAML: {exc}") from None
    if document is None:
        raise DefinitionError(f"{source}: no event definitions (the file is empty)")
    if not isinstance(document, list):
        raise DefinitionError(f"{source}: must be a list of event definitions")
    return [_event_definition(entry, source) for entry in document]


def load_definitions(path: Path | str) -> list[EventDefinition]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"cannot read event definitions {source}: {exc}") from None
    return parse_definitions(text, source)


def find_definitions_file(conf: cfg.ConfigOpts) -> Path:
    """``[event] definitions_cfg_file``: as given, else next to the config files or in
    /etc/annals, else (only for the default name) the copy shipped with Annals."""
    name: str = conf.event.definitions_cfg_file
    if Path(name).is_file():
        return Path(name)
    found = None if Path(name).is_absolute() else conf.find_file(name)
    if found:
        return Path(found)
    if name == DEFAULT_FILE_NAME:
        return Path(str(resources.files("annals.ingest") / DEFAULT_FILE_NAME))
    raise DefinitionError(
        f"event definitions file {name!r} not found ([event] "
        "definitions_cfg_file; relative names are looked up next to the "
        "configuration files and in /etc/annals)"
    )


def from_conf(conf: cfg.ConfigOpts) -> Definitions:
    """Load the configured definitions; DefinitionError stops start-up."""
    path = find_definitions_file(conf)
    LOG.info("loading event definitions from %s", path)
    return Definitions(load_definitions(path), conf.event.drop_unmatched_notifications)
