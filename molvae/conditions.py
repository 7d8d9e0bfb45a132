"""Property conditions for a conditional VAE: where their values come from, how they are scaled, and
how a request such as ``{"logp": 3.0}`` becomes the model's standardized condition vectors.

Values come from RDKit (``config.conditions``: logp, qed, sa, mw, tpsa, hbd, hba, ...) or from numeric
columns of the training table (``config.condition_columns``). They are standardized with the
training split's mean and standard deviation; those, the range seen and the correlations are saved
with the model as ``conditions.json``, so a request can be checked (unknown name: error; a value
outside the training range: :class:`ConditionWarning`) and conditions left out of a request can be
drawn from their distribution given the ones asked for.

    >>> spec = ConditionSpec.load("runs/cvae/conditions.json")
    >>> c = spec.request({"logp": 3.0}, n=100, seed=0)   # (100, C) standardized, float32
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from molvae.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from molvae.data import PreparedData

__all__ = ["CONDITION_PROPERTIES", "ConditionSpec", "ConditionWarning", "condition_values", "CONDITIONS_FILE"]

CONDITION_PROPERTIES = ("logp", "qed", "sa", "mw", "tpsa", "hbd", "hba", "rings", "heavy_atoms")
"""RDKit properties a model can be conditioned on (names of :data:`molvae.chem.PROPERTIES`)."""
CONDITIONS_FILE = "conditions.json"
OUT_OF_RANGE_STD = 3.0
"""A requested value further than this many training standard deviations from the mean warns."""


class ConditionWarning(UserWarning):
    """A requested condition lies outside what the model saw in training: the result is an extrapolation."""


@dataclass
class ConditionSpec:
    """Names, sources and training statistics of a model's conditions (the order of ``c``'s columns)."""

    names: list[str]
    sources: list[str]  # "rdkit" | "column", per name
    mean: np.ndarray  # (C,) raw units
    std: np.ndarray  # (C,)
    low: np.ndarray  # (C,) smallest training value
    high: np.ndarray  # (C,) largest training value
    corr: np.ndarray  # (C, C) correlation of the training values
    n: int  # training molecules the statistics come from

    # ------------------------------------------------------------------ building, saving
    @classmethod
    def fit(cls, names: Sequence[str], sources: Sequence[str], values: np.ndarray) -> "ConditionSpec":
        """Statistics of raw training values ``(n, C)`` (finite)."""
        values = np.asarray(values, dtype=np.float64)
        mean = values.mean(0)
        std = values.std(0)
        std = np.where(std > 1e-12, std, 1.0)
        z = (values - mean) / std
        corr = (z.T @ z) / max(len(z), 1) if len(z) > 1 else np.eye(len(names))
        np.fill_diagonal(corr, 1.0)
        return cls(list(names), list(sources), mean, std, values.min(0), values.max(0), corr, len(values))

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names, "sources": self.sources, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "min": self.low.tolist(), "max": self.high.tolist(), "corr": self.corr.tolist(), "n": self.n}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ConditionSpec":
        """Read ``conditions.json`` (plain JSON; nothing is executed)."""
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"{path}: missing (the model is conditional and needs its condition statistics)")
        try:
            d = json.loads(path.read_text())
            c = len(d["names"])
            arr = {k: np.asarray(d[k], dtype=np.float64) for k in ("mean", "std", "min", "max")}
            corr = np.asarray(d["corr"], dtype=np.float64).reshape(c, c)
            if any(a.shape != (c,) for a in arr.values()) or len(d["sources"]) != c:
                raise ValueError("arrays do not match the number of names")
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: unreadable condition statistics ({exc})") from None
        return cls(list(d["names"]), list(d["sources"]), arr["mean"], arr["std"], arr["min"], arr["max"], corr,
                   int(d.get("n", 0)))

    # ------------------------------------------------------------------ scaling
    def standardize(self, values: np.ndarray) -> np.ndarray:
        """Raw ``(n, C)`` -> standardized float32."""
        return ((np.asarray(values, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def unstandardize(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.std + self.mean

    # ------------------------------------------------------------------ requests
    def check_names(self, names: Sequence[str]) -> None:
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ConfigError(f"unknown condition {unknown[0]!r}; this model was trained on: {', '.join(self.names)}")

    def request(self, condition: Mapping[str, Any] | None, n: int, seed: int | None = 0,
                what: str = "condition", unchecked: Sequence[str] = ()) -> np.ndarray:
        """Standardized conditions ``(n, C)`` float32 for a request ``{name: value or n values}``.

        Conditions not named are drawn from the training distribution (a Gaussian with the saved
        correlations) given the named ones, so ``request(None, n)`` samples all of them. Names in
        ``unchecked`` (measured properties of given molecules, not requests) are not range-checked.

        :raises ConfigError: an unknown name, a non-finite value, or a wrong number of values.
        :warns ConditionWarning: a value outside the training range or beyond 3 standard deviations.
        """
        condition = dict(condition or {})
        self.check_names(list(condition))
        c = len(self.names)
        out = np.zeros((n, c), dtype=np.float64)
        given = [i for i, name in enumerate(self.names) if name in condition]
        for i in given:
            name = self.names[i]
            value = np.asarray(condition[name], dtype=np.float64) if _numeric(condition[name]) else None
            if value is None or value.ndim > 1 or (value.ndim == 1 and len(value) != n):
                raise ConfigError(f"{what} {name}: expected a number or {n} numbers, got {condition[name]!r}")
            if not np.isfinite(value).all():
                raise ConfigError(f"{what} {name}: values must be finite, got {condition[name]!r}")
            if name not in unchecked:
                self._warn_range(name, i, value)
            out[:, i] = (value - self.mean[i]) / self.std[i]
        missing = [i for i in range(c) if i not in given]
        if missing:
            rng = np.random.default_rng(seed)
            r = self.corr
            if given:  # Gaussian conditional of the missing given the named (standardized)
                gg = r[np.ix_(given, given)] + 1e-6 * np.eye(len(given))
                mg = r[np.ix_(missing, given)]
                weights = np.linalg.solve(gg, mg.T).T  # (M, G)
                mean = out[:, given] @ weights.T
                cov = r[np.ix_(missing, missing)] - weights @ mg.T
            else:
                mean, cov = np.zeros((n, len(missing))), r[np.ix_(missing, missing)]
            chol = np.linalg.cholesky(cov + 1e-6 * np.eye(len(missing)))
            out[:, missing] = mean + rng.standard_normal((n, len(missing))) @ chol.T
        return out.astype(np.float32)

    def standardized(self, condition: Mapping[str, Any] | np.ndarray | None, n: int,
                     seed: int | None = 0) -> np.ndarray:
        """Standardized conditions ``(n, C)`` float32 from a request (:meth:`request`), or given already
        standardized ``(n, C)``; the training mean (0) when ``condition`` is None.

        :raises ConfigError: as :meth:`request`; standardized values of the wrong shape.
        """
        if condition is None:
            return np.zeros((n, len(self.names)), np.float32)
        if isinstance(condition, Mapping):
            return self.request(condition, n, seed=seed)
        c = np.asarray(condition, dtype=np.float32)
        if c.shape != (n, len(self.names)):
            raise ConfigError(f"standardized conditions must have shape ({n}, {len(self.names)}), got {c.shape}")
        return c

    def for_molecules(self, smiles: Sequence[str], condition: Mapping[str, Any] | None = None) -> np.ndarray:
        """Standardized conditions ``(n, C)`` of given molecules (canonical SMILES): RDKit properties
        computed from them unless ``condition`` gives them, column conditions from ``condition`` (else
        the training mean, with a :class:`ConditionWarning`). Measured values are not range-checked."""
        from molvae.chem import compute_properties

        condition = dict(condition or {})
        self.check_names(list(condition))
        n = len(smiles)
        rdkit = [name for name, src in zip(self.names, self.sources) if src == "rdkit" and name not in condition]
        computed = {}
        if rdkit:
            values = compute_properties(list(smiles), rdkit)
            computed = {name: values[:, j] for j, name in enumerate(rdkit)}
        missing = [name for name in self.names if name not in condition and name not in computed]
        if missing:
            warnings.warn(f"no values given for condition {', '.join(missing)}; using the training mean "
                          f"(pass condition={{{missing[0]!r}: ...}})", ConditionWarning, stacklevel=4)
            computed.update({name: np.full(n, self.mean[self.names.index(name)]) for name in missing})
        given = {}
        for k, v in condition.items():
            try:
                given[k] = np.broadcast_to(np.asarray(v, float), (n,))
            except (TypeError, ValueError):
                raise ConfigError(f"condition {k}: expected a number or {n} numbers, got {v!r}") from None
        return self.request({**computed, **given}, n, what="condition", unchecked=list(computed))

    def _warn_range(self, name: str, i: int, value: np.ndarray) -> None:
        lo, hi = float(value.min()), float(value.max())
        zmax = max(abs(lo - self.mean[i]), abs(hi - self.mean[i])) / self.std[i]
        outside = lo < self.low[i] or hi > self.high[i]
        if outside or zmax > OUT_OF_RANGE_STD:
            shown = f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"
            where = "outside the training range" if outside else f"more than {OUT_OF_RANGE_STD:g} std from the training mean"
            warnings.warn(f"condition {name}={shown} is {where} (mean {self.mean[i]:.3g}, std {self.std[i]:.3g}, "
                          f"range {self.low[i]:.3g}..{self.high[i]:.3g}); samples there are an extrapolation",
                          ConditionWarning, stacklevel=3)


def _numeric(value: Any) -> bool:
    try:
        np.asarray(value, dtype=np.float64)
        return True
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------- training values
def rdkit_values(smiles: Sequence[str], names: Sequence[str], progress: bool = False) -> np.ndarray:
    """RDKit properties ``(n, len(names))`` of canonical SMILES (NaN where one cannot be computed);
    large inputs are computed in worker processes."""
    from molvae.chem import compute_properties

    names = list(names)
    if not names:
        return np.zeros((len(smiles), 0))
    chunk = 5000
    if len(smiles) < 20_000 or (os.cpu_count() or 1) == 1:
        return compute_properties(list(smiles), names)
    from functools import partial

    from molvae._pool import parallel_map

    parts = [list(smiles[i:i + chunk]) for i in range(0, len(smiles), chunk)]
    return np.concatenate(parallel_map(partial(compute_properties, names=names), parts, os.cpu_count() or 1))


def column_values(source: Any, columns: Sequence[str], lines: Sequence[int],
                  smiles_column: str | None = None) -> tuple[np.ndarray, list[str | None]]:
    """Numeric values ``(n, len(columns))`` of a table's columns for the rows at ``lines`` (as
    :func:`molvae.data.read_smiles` numbers them), and per row why it cannot be used (or None).

    ``source`` is a CSV/TSV path (optionally .gz), a named dataset or a pandas DataFrame.
    """
    import pandas as pd

    from molvae.data import read_smiles

    columns = list(columns)
    if isinstance(source, (str, os.PathLike, pd.DataFrame)):
        table = read_smiles(source, smiles_column, extra_columns=columns, extra_label="condition column")
    else:
        raise DataError(f"condition columns need a CSV/TSV file or a DataFrame, got a {type(source).__name__}")
    by_line = dict(zip(table["line"].tolist(), table[columns].itertuples(index=False, name=None)))
    rows = [by_line.get(line, ("",) * len(columns)) for line in lines]
    values = np.full((len(rows), len(columns)), np.nan)
    reasons: list[str | None] = [None] * len(rows)
    for r, row in enumerate(rows):
        for j, v in enumerate(row):
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = math.nan
            if not math.isfinite(x):
                reasons[r] = reasons[r] or f"condition column {columns[j]!r}: {v!r} is not a finite number"
            values[r, j] = x
    return values, reasons


def condition_values(prepared: PreparedData, source: Any, conditions: Sequence[str], condition_columns: Sequence[str],
                     smiles_column: str | None = None, progress: bool = False) -> np.ndarray:
    """Raw condition values ``(n, C)`` for the kept molecules of ``prepared`` (a
    :class:`molvae.data.PreparedData`), RDKit properties first. Molecules without a usable value are
    moved to ``prepared``'s rejects (counted as invalid, with the reason) and their rows removed.

    :raises DataError: a column is missing, or no molecule has usable values.
    """
    n = len(prepared.smiles)
    parts, reasons = [], [None] * n
    if conditions:
        rd = rdkit_values(prepared.smiles, conditions, progress)
        for i in np.flatnonzero(~np.isfinite(rd).all(1)):
            reasons[i] = "RDKit could not compute a condition property"
        parts.append(rd)
    if condition_columns:
        col, why = column_values(source, condition_columns, prepared.lines, smiles_column)
        reasons = [a or b for a, b in zip(reasons, why)]
        parts.append(col)
    values = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
    bad = [i for i, r in enumerate(reasons) if r]
    if bad:
        prepared.drop(bad, [reasons[i] for i in bad])
        keep = np.setdiff1d(np.arange(n), bad)
        values = values[keep]
        if len(keep) == 0:
            raise DataError(f"{prepared.source}: no molecule has usable condition values ({reasons[bad[0]]})")
    return values


# Moved in the layering of issue 13: importable from here for one release (a DeprecationWarning says where).
_MOVED = {"parse_condition": "molvae.cli._args"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        warnings.warn(f"molvae.conditions.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'molvae.conditions' has no attribute {name!r}")
