"""Constraints on candidate molecules; a violated one gives a reason to record with the molecule.

Specs (``--constraint``):

- ``similarity>=0.4:<SMILES>``, or ``similarity>=0.4`` with the run's start molecule given as
  ``start``: Morgan radius-2, 2048-bit Tanimoto similarity (the JT-VAE constrained-optimization setting);
- ``<property><op><value>`` with op one of ``>= <= > <`` and any property name of
  :data:`molvae.chem.PROPERTIES` (``sa<=4.5``, ``qed>0.5``) or built-in objective (``penalized_logp>=0``);
- ``<property>=lo..hi``: a closed window (``mw=200..500``); ``<property>=x`` means exactly x;
- ``alerts`` or ``alerts:pains,brenk,nih``: no structural alert from RDKit's FilterCatalog sets.
"""

from __future__ import annotations

import math
import operator
import re
from typing import Callable, Iterable

from rdkit import Chem, DataStructs

from molvae.chem import PROPERTIES, morgan_fingerprint, parse_smiles
from molvae.errors import ObjectiveError

__all__ = ["Constraint", "parse_constraint", "evaluate_constraints", "ALERT_CATALOGS"]


class Constraint:
    """A condition on a molecule. ``check(mol)`` returns ``None`` if satisfied, else the reason."""

    def __init__(self, name: str, check: Callable[[Chem.Mol], str | None]) -> None:
        self.name = name
        self._check = check

    def check(self, mol: Chem.Mol | str) -> str | None:
        """``None`` if ``mol`` satisfies the constraint, else a short reason (e.g. ``'sa 5.12 > 4.5'``)."""
        if not isinstance(mol, Chem.Mol):
            parsed, reason = parse_smiles(mol)
            if parsed is None:
                return f"invalid SMILES: {reason}"
            mol = parsed
        return self._check(mol)

    __call__ = check

    def __repr__(self) -> str:
        return f"Constraint({self.name!r})"


def evaluate_constraints(mol: Chem.Mol | str, constraints: Iterable[Constraint]) -> str | None:
    """The first violated constraint's reason, or ``None`` when all hold."""
    for constraint in constraints:
        reason = constraint.check(mol)
        if reason is not None:
            return reason
    return None


_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_NEGATED = {">=": "<", "<=": ">", ">": "<=", "<": ">="}
_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?P<op>>=|<=|>|<|==?)\s*(?P<value>[^:]*?)\s*(?::(?P<ref>.*))?$")


def _fmt(x: float) -> str:
    if math.isfinite(x) and x == int(x):
        return str(int(x))  # counts: "rings 5", not "rings 5.00"
    return f"{x:.2f}" if abs(x) < 1000 else f"{x:.1f}"


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ObjectiveError(f"invalid number {text!r} in constraint {spec!r}") from None
    if not math.isfinite(value):
        raise ObjectiveError(f"invalid number {text!r} in constraint {spec!r}")
    return value


def _compare(name: str, fn: Callable[[Chem.Mol], float], op: str, text: str, spec: str, suffix: str = "") -> Constraint:
    if op in ("=", "=="):
        if ".." in text:
            lo_text, hi_text = text.split("..", 1)
            lo, hi = _number(lo_text, spec), _number(hi_text, spec)
        else:
            lo = hi = _number(text, spec)
        if lo > hi:
            raise ObjectiveError(f"empty window {lo:g}..{hi:g} in constraint {spec!r}")

        def check_window(mol: Chem.Mol) -> str | None:
            value = fn(mol)
            if value is not None and lo <= value <= hi:
                return None
            shown = "none" if value is None else _fmt(value)
            return f"{name} {shown} outside {lo:g}..{hi:g}{suffix}"

        return Constraint(spec, check_window)

    bound = _number(text, spec)
    compare = _OPS[op]

    def check_bound(mol: Chem.Mol) -> str | None:
        value = fn(mol)
        if value is not None and compare(value, bound):
            return None
        shown = "none" if value is None else _fmt(value)
        return f"{name} {shown} {_NEGATED[op]} {bound:g}{suffix}"

    return Constraint(spec, check_bound)


ALERT_CATALOGS = ("pains", "brenk", "nih")
"""RDKit FilterCatalog sets used by the ``alerts`` constraint."""

_CATALOG_CACHE: dict[tuple[str, ...], object] = {}


def _alerts(spec: str, which: str | None) -> Constraint:
    from rdkit.Chem import FilterCatalog

    names = tuple(n.strip().lower() for n in which.split(",")) if which else ALERT_CATALOGS
    bad = [n for n in names if n not in ALERT_CATALOGS]
    if bad:
        raise ObjectiveError(f"unknown alert set {bad[0]!r} in constraint {spec!r}; expected {', '.join(ALERT_CATALOGS)}")
    if names not in _CATALOG_CACHE:
        params = FilterCatalog.FilterCatalogParams()
        for n in names:
            params.AddCatalog(getattr(FilterCatalog.FilterCatalogParams.FilterCatalogs, n.upper()))
        _CATALOG_CACHE[names] = FilterCatalog.FilterCatalog(params)
    catalog = _CATALOG_CACHE[names]

    def check(mol: Chem.Mol) -> str | None:
        entry = catalog.GetFirstMatch(mol)
        if entry is None:
            return None
        return f"structural alert: {entry.GetDescription()}"

    return Constraint(spec, check)


def _similarity_fn(reference: Chem.Mol) -> Callable[[Chem.Mol], float]:
    ref = morgan_fingerprint(reference, 2, 2048)
    return lambda mol: DataStructs.TanimotoSimilarity(morgan_fingerprint(mol, 2, 2048), ref)


def parse_constraint(spec: str, start: str | Chem.Mol | None = None) -> Constraint:
    """Build a :class:`Constraint` from a spec (see the module docstring).

    ``start`` is the run's start molecule, the reference of a ``similarity`` constraint that names none.

    :raises ObjectiveError: unknown property, bad number or operator, invalid reference SMILES,
        ``similarity`` without a reference.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ObjectiveError("empty constraint")
    text = spec.strip()
    if text.lower() == "alerts" or text.lower().startswith("alerts:"):
        return _alerts(text, text.split(":", 1)[1] if ":" in text else None)
    match = _SPEC.match(text)
    if match is None:
        raise ObjectiveError(
            f"cannot parse constraint {spec!r}; expected e.g. 'similarity>=0.4:<SMILES>', 'sa<=4.5', 'mw=200..500' or 'alerts'"
        )
    name, op, value, ref = match["name"].lower(), match["op"], match["value"], match["ref"]
    if name == "similarity":
        if ref:
            mol, reason = parse_smiles(ref.strip())
            if mol is None:
                raise ObjectiveError(f"invalid reference SMILES {ref.strip()!r} in constraint {spec!r}: {reason}")
            suffix = f" to {ref.strip()}"
        elif start is not None:
            mol = start if isinstance(start, Chem.Mol) else parse_smiles(start)[0]
            if mol is None:
                raise ObjectiveError(f"invalid start molecule {start!r} for constraint {spec!r}")
            suffix = " to start"
        else:
            raise ObjectiveError(
                f"constraint {spec!r} needs a reference molecule: '{text}:<SMILES>' or a start molecule"
            )
        return _compare("similarity", _similarity_fn(mol), op, value, spec, suffix)
    if ref is not None:
        raise ObjectiveError(f"constraint {spec!r}: only 'similarity' takes a ':<SMILES>' reference")
    if name in PROPERTIES:
        return _compare(name, PROPERTIES[name], op, value, spec)
    from molvae.objectives.core import _BUILTINS, get_objective

    if name in _BUILTINS:
        return _compare(name, get_objective(name).score_mol, op, value, spec)
    known = ", ".join(["similarity", *PROPERTIES, "alerts"])
    raise ObjectiveError(f"unknown property {name!r} in constraint {spec!r}; expected one of {known} or an objective name")
