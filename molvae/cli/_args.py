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


def at_least(value: float, flag: str, low: float) -> None:
    """A numeric option checked where it enters: finite and at least ``low``. :raises ConfigError:"""
    import math

    from molvae.errors import ConfigError

    if not (math.isfinite(value) and value >= low):
        raise ConfigError(f"{flag} must be a number >= {low:g}, got {value}")


def parse_condition(text: str) -> dict[str, float]:
    """``"logp=3.0,qed=0.8"`` -> ``{"logp": 3.0, "qed": 0.8}``; a malformed pair is a ConfigError."""
    from molvae.errors import ConfigError

    out: dict[str, float] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--condition expects NAME=VALUE[,NAME=VALUE...], got {pair!r}") from None
    if not out:
        raise ConfigError("--condition is empty; expected NAME=VALUE[,NAME=VALUE...]")
    return out
