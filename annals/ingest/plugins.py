"""Trait plugins of Ceilometer's event definitions: split, bitfield, timedelta and map.

A plugin gets the non-null matches of a trait's ``fields`` as ``(path, value)`` pairs, ``path``
being the dotted text of the match (``payload.image_meta.org.openstack__1__architecture``),
and returns candidate values; ``None`` candidates are dropped and the first one left becomes
the trait. Parameters are checked when the definitions are loaded, so a typo stops start-up
instead of failing on every notification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import iso8601

LOG = logging.getLogger(__name__)

Match = tuple[str, Any]


class PluginError(ValueError):
    """A plugin named with parameters it cannot work with."""


class TraitPlugin(Protocol):
    def trait_values(self, matches: Sequence[Match]) -> list[Any]: ...


def _check_params(name: str, params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise PluginError(
            f"plugin '{name}' has no parameter {', '.join(map(repr, unknown))} "
            f"(it accepts: {accepted})"
        )


def _int_param(name: str, params: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = params.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PluginError(f"plugin '{name}': parameter '{key}' must be an integer")
    return value


class SplitPlugin:
    """Deprecated in Ceilometer in favour of ``.`split(sep, segment, max_split)``` paths."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        _check_params("split", params, {"separator", "segment", "max_split"})
        separator = params.get("separator", ".")
        if not isinstance(separator, str) or not separator:
            raise PluginError("plugin 'split': parameter 'separator' must be a non-empty string")
        self.separator = separator
        self.segment = _int_param("split", params, "segment", 0) or 0
        self.max_split = _int_param("split", params, "max_split", None)

    def trait_values(self, matches: Sequence[Match]) -> list[Any]:
        values: list[Any] = []
        for _path, value in matches:
            limit = -1 if self.max_split is None else self.max_split
            parts = str(value).split(self.separator, limit)
            try:
                values.append(parts[self.segment])
            except IndexError:
                values.append(None)
        return values


class BitfieldPlugin:
    """Sets bit ``bit`` when ``path`` matched (and, if ``value`` is given, equals it)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        _check_params("bitfield", params, {"initial_bitfield", "flags"})
        self.initial = _int_param("bitfield", params, "initial_bitfield", 0) or 0
        flags = params.get("flags") or []
        if not isinstance(flags, list):
            raise PluginError("plugin 'bitfield': parameter 'flags' must be a list")
        self.flags: list[tuple[str, int, bool, Any]] = []
        for position, flag in enumerate(flags):
            if not isinstance(flag, dict) or not isinstance(flag.get("path"), str):
                raise PluginError(f"plugin 'bitfield': flag {position} needs a 'path' string")
            bit = flag.get("bit")
            if isinstance(bit, bool) or not isinstance(bit, int) or bit < 0:
                raise PluginError(
                    f"plugin 'bitfield': flag {position} needs 'bit', a non-negative integer"
                )
            self.flags.append((flag["path"], 2**bit, "value" in flag, flag.get("value")))

    def trait_values(self, matches: Sequence[Match]) -> list[Any]:
        found = dict(matches)
        bitfield = self.initial
        for path, bit, has_value, value in self.flags:
            if path in found and (not has_value or found[path] == value):
                bitfield |= bit
        return [bitfield]


class TimedeltaPlugin:
    """Absolute seconds between exactly two timestamps."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        _check_params("timedelta", params, set())

    def trait_values(self, matches: Sequence[Match]) -> list[Any]:
        if len(matches) != 2:
            LOG.warning("timedelta plugin: expected 2 timestamp fields, found %d", len(matches))
            return [None]
        (start_path, start), (end_path, end) = matches
        try:
            delta = iso8601.parse_date(end) - iso8601.parse_date(start)
        except (ValueError, TypeError) as exc:
            LOG.warning(
                "timedelta plugin: %s and %s must be timestamps: %s", start_path, end_path, exc
            )
            return [None]
        return [abs(delta.total_seconds())]


class MapPlugin:
    """Maps values through a table; unknown values map to ``default`` (None: no trait)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        _check_params("map", params, {"values", "default", "case_sensitive"})
        values = params.get("values")
        if not isinstance(values, dict) or not values:
            raise PluginError("plugin 'map': parameter 'values' must be a non-empty mapping")
        self.case_sensitive = bool(params.get("case_sensitive", True))
        self.values = {self._fold(k): v for k, v in values.items()}
        self.default = params.get("default")

    def _fold(self, key: Any) -> Any:
        return key if self.case_sensitive or not isinstance(key, str) else key.casefold()

    def trait_values(self, matches: Sequence[Match]) -> list[Any]:
        mapped: list[Any] = []
        for path, value in matches:
            try:
                mapped.append(self.values[self._fold(value)])
            except (KeyError, TypeError):  # TypeError: an unhashable value (list, dict)
                LOG.warning(
                    "map plugin: unknown value %r at %s, using the default %r",
                    value,
                    path,
                    self.default,
                )
                mapped.append(self.default)
        return mapped


PLUGINS: dict[str, Callable[[Mapping[str, Any]], TraitPlugin]] = {
    "split": SplitPlugin,
    "bitfield": BitfieldPlugin,
    "timedelta": TimedeltaPlugin,
    "map": MapPlugin,
}


def make_plugin(name: str, params: Mapping[str, Any]) -> TraitPlugin:
    """The plugin ``name`` configured with ``params``; PluginError when either is wrong."""
    factory = PLUGINS.get(name)
    if factory is None:
        raise PluginError(f"unknown plugin '{name}' (available: {', '.join(sorted(PLUGINS))})")
    return factory(params)
