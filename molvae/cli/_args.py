"""Argument helpers shared by the subcommands (not a command: the leading underscore hides it)."""

from __future__ import annotations

import json


def parse_key_values(items: list[str], flag: str) -> dict:
    """``KEY=VALUE`` strings to a dict, values parsed as JSON where they can be (numbers, booleans, lists)."""
    from molvae.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
