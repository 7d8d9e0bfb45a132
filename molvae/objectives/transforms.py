"""Desirability transforms: map a raw property to a score in [0, 1] that the optimizer maximizes.

The four shapes are REINVENT's (Blaschke et al. 2020, REINVENT 2.0 and 4 "transforms"), written in a
numerically stable logistic form:

- ``sigmoid(low, high, k=0.5)``: rises from 0 below ``low`` to 1 above ``high`` (0.5 at the midpoint);
- ``reverse_sigmoid(low, high, k=0.5)``: the mirror image, 1 below ``low`` and 0 above ``high``;
- ``double_sigmoid(low, high, coef_div=100, coef_si=150, coef_se=150)``: 1 inside ``[low, high]``,
  falling off on both sides (``coef_se`` sets the steepness at ``low``, ``coef_si`` at ``high``);
- ``step(low, high)``: 1 inside ``[low, high]``, else 0.

In an objective spec a transform follows the objective after a colon, arguments positional or named:
``mw:double_sigmoid(300, 500)``, ``logp:sigmoid(low=1, high=3, k=0.25)``; ``NAME:min`` minimizes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from molvae.errors import ObjectiveError

__all__ = ["Transform", "TRANSFORMS", "make_transform", "parse_transform"]

_LN10 = math.log(10.0)


def _logistic(t: float) -> float:
    """1 / (1 + exp(-t)) without overflow."""
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def _sigmoid(x: float, low: float, high: float, k: float = 0.5) -> float:
    # REINVENT: 1 / (1 + 10 ** (k * 10 * ((low + high) / 2 - x) / (high - low)))
    return _logistic(_LN10 * 10.0 * k * (x - (low + high) / 2.0) / (high - low))


def _reverse_sigmoid(x: float, low: float, high: float, k: float = 0.5) -> float:
    return 1.0 - _sigmoid(x, low, high, k)


def _double_sigmoid(x: float, low: float, high: float, coef_div: float = 100.0, coef_si: float = 150.0,
                    coef_se: float = 150.0) -> float:
    # REINVENT: 10^(se x/div) / (10^(se x/div) + 10^(se low/div)) - 10^(si x/div) / (10^(si x/div) + 10^(si high/div))
    rise = _logistic(_LN10 * coef_se * (x - low) / coef_div)
    fall = _logistic(_LN10 * coef_si * (x - high) / coef_div)
    return rise - fall


def _step(x: float, low: float, high: float) -> float:
    return 1.0 if low <= x <= high else 0.0


TRANSFORMS: dict[str, tuple[Callable[..., float], tuple[str, ...], int]] = {
    "sigmoid": (_sigmoid, ("low", "high", "k"), 2),
    "reverse_sigmoid": (_reverse_sigmoid, ("low", "high", "k"), 2),
    "double_sigmoid": (_double_sigmoid, ("low", "high", "coef_div", "coef_si", "coef_se"), 2),
    "step": (_step, ("low", "high"), 2),
}
"""Transform name -> (function, parameter names, how many are required)."""


@dataclass(frozen=True)
class Transform:
    """A named transform with its parameters; ``t(x)`` is the desirability of raw value ``x``."""

    kind: str
    params: tuple[tuple[str, float], ...]

    def __call__(self, x: float) -> float:
        if not math.isfinite(x):
            return math.nan
        return TRANSFORMS[self.kind][0](x, **dict(self.params))

    @property
    def text(self) -> str:
        """The spec form, e.g. ``double_sigmoid(low=300, high=500)``."""
        return f"{self.kind}({', '.join(f'{k}={v:g}' for k, v in self.params)})"


def make_transform(kind: str, params: dict[str, float], where: str = "") -> Transform:
    """A checked :class:`Transform` (``where`` names the spec or file for the error message).

    :raises ObjectiveError: unknown transform or parameter, a missing bound, non-numbers, ``low >= high``.
    """
    at = f" in {where}" if where else ""
    if kind not in TRANSFORMS:
        raise ObjectiveError(f"unknown transform {kind!r}{at}; expected one of {', '.join(TRANSFORMS)}")
    _, names, required = TRANSFORMS[kind]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ObjectiveError(f"transform {kind} has no parameter {unknown[0]!r}{at}; it takes {', '.join(names)}")
    missing = [n for n in names[:required] if n not in params]
    if missing:
        raise ObjectiveError(f"transform {kind} needs {' and '.join(missing)}{at}")
    values = {}
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ObjectiveError(f"transform {kind}: {name} must be a finite number{at}, got {value!r}")
        values[name] = float(value)
    if values["low"] >= values["high"]:
        raise ObjectiveError(f"transform {kind}: low ({values['low']:g}) must be below high ({values['high']:g}){at}")
    if kind == "double_sigmoid" and values.get("coef_div", 1.0) == 0:
        raise ObjectiveError(f"transform double_sigmoid: coef_div must not be 0{at}")
    return Transform(kind, tuple((n, values[n]) for n in names if n in values))


_CALL = re.compile(r"^(?P<kind>[a-z_]+)\((?P<args>[^()]*)\)$")


def parse_transform(text: str, where: str = "") -> Transform:
    """``sigmoid(1, 3)`` or ``sigmoid(low=1, high=3, k=0.25)`` -> :class:`Transform`.

    :raises ObjectiveError: not of that form, or a bad name or value (see :func:`make_transform`).
    """
    match = _CALL.match(text.strip())
    if match is None:
        raise ObjectiveError(f"cannot read transform {text!r}{' in ' + where if where else ''}; "
                             "expected e.g. sigmoid(1, 3) or double_sigmoid(low=300, high=500)")
    kind, names = match["kind"], TRANSFORMS.get(match["kind"], (None, (), 0))[1]
    params: dict[str, float] = {}
    args = [a.strip() for a in match["args"].split(",") if a.strip()]
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        name = key.strip() if eq else (names[i] if i < len(names) else f"argument {i + 1}")
        try:
            params[name] = float(value if eq else key)
        except ValueError:
            raise ObjectiveError(f"transform {kind}: {name} must be a number, got {(value if eq else key)!r}"
                                 f"{' in ' + where if where else ''}") from None
    return make_transform(kind, params, where)
