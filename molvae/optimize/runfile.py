"""TOML run files: one optimization stated in one place (``molvae optimize --config run.toml``).

    model = "zinc250k"                # a shipped model's name or a model directory
    out = "runs/kinase"               # relative paths are relative to this file
    budget = 2000
    method = "population"
    constraints = ["sa<=4.5", "alerts"]
    combine = "geometric_mean"        # sum | geometric_mean | pareto (several objectives, method nsga2)

    [[objectives]]
    spec = "similarity:Cc1ccc(cc1)S(N)(=O)=O"
    weight = 2

    [[objectives]]
    spec = "mw"
    transform = { type = "double_sigmoid", low = 300, high = 500 }   # or "double_sigmoid(300, 500)"

    [[objectives]]
    spec = "logp"
    direction = "min"

    [options]                         # the method's options (as --option KEY=VALUE)
    population = 200

    [oracle]
    workers = 4                       # processes scoring each batch
    timeout = 900                     # seconds an exec: program may take per batch
    batch = 32

Every key is checked where it is read: an unknown key, a wrong type or a value out of range is one
error naming the file and the key. :func:`read_run_file` returns the keyword arguments of
:func:`molvae.optimize.optimize`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from molvae.errors import ConfigError
from molvae.optimize.methods import METHODS

__all__ = ["read_run_file", "COMBINE"]

COMBINE = ("sum", "geometric_mean", "pareto")
"""How several objectives become what the optimizer maximizes: a weighted sum, a weighted geometric
mean (desirabilities in [0, 1]: every one must be good), or separate objectives (Pareto, ``nsga2``)."""

_TOP = {"model": str, "out": str, "budget": int, "method": str, "seed": int, "seeds": str, "constraints": list,
        "combine": str, "objectives": list, "options": dict, "oracle": dict, "storage": str, "study": str,
        "n_decode": int, "temperature": float, "bound": float, "patience": int, "max_points": int}
_OBJECTIVE = {"spec": str, "weight": float, "transform": (str, dict), "direction": str}
_ORACLE = {"workers": int, "timeout": float, "batch": int}
_POSITIVE = {"budget", "n_decode", "patience", "max_points", "workers", "batch"}


def _type_name(kind: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table"}
    return " or ".join(names[k] for k in kind) if isinstance(kind, tuple) else names[kind]


def _checked(table: dict, schema: dict, where: str, file: str) -> dict:
    """``table`` with unknown keys refused and each value's type (and sign) checked."""
    for key, value in table.items():
        if key not in schema:
            raise ConfigError(f"{file}: unknown key {key!r} in {where}; allowed: {', '.join(schema)}")
        kind = schema[key]
        ok = isinstance(value, kind) if kind is not float else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            raise ConfigError(f"{file}: {key} in {where} must be {_type_name(kind)}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{file}: {key} in {where} must be a finite number, got {value!r}")
        if key in _POSITIVE and value < 1:
            raise ConfigError(f"{file}: {key} in {where} must be at least 1, got {value!r}")
    return table


def _objective(entry: Any, i: int, file: str) -> Any:
    """One ``[[objectives]]`` entry as an Objective, with its direction and transform applied."""
    from molvae.objectives import get_objective, make_transform, minimized, parse_transform, transformed

    where = f"[[objectives]] entry {i + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{file}: {where} must be a table with spec = \"...\"")
    _checked(entry, _OBJECTIVE, where, file)
    if "spec" not in entry:
        raise ConfigError(f"{file}: {where} has no spec (e.g. spec = \"qed\")")
    objective = get_objective(entry["spec"])
    direction = entry.get("direction", "max")
    if direction not in ("max", "min"):
        raise ConfigError(f"{file}: direction in {where} must be \"max\" or \"min\", got {direction!r}")
    if direction == "min":
        objective = minimized(objective)
    transform = entry.get("transform")
    if isinstance(transform, str):
        objective = transformed(objective, parse_transform(transform, where=f"{file}, {where}"))
    elif isinstance(transform, dict):
        params = dict(transform)
        kind = params.pop("type", None)
        if not isinstance(kind, str):
            raise ConfigError(f"{file}: the transform table in {where} needs type = \"sigmoid\" (or another)")
        objective = transformed(objective, make_transform(kind, params, where=f"{file}, {where}"))
    return objective, float(entry.get("weight", 1.0))


def _combined(spec: dict, file: str) -> Any:
    """The objective (or list of objectives, for ``pareto``) the run maximizes."""
    from molvae.objectives import weighted_geometric_mean, weighted_sum

    entries = spec.get("objectives")
    if not entries:
        raise ConfigError(f"{file}: no objective: add an [[objectives]] table with spec = \"...\"")
    parts = [_objective(e, i, file) for i, e in enumerate(entries)]
    combine = spec.get("combine", "sum")
    if combine not in COMBINE:
        raise ConfigError(f"{file}: combine must be one of {', '.join(COMBINE)}, got {combine!r}")
    if len(parts) == 1:
        objective, weight = parts[0]
        return objective if weight == 1.0 else weighted_sum([parts[0]])
    if combine == "pareto":
        return [o for o, _ in parts]
    return weighted_sum(parts) if combine == "sum" else weighted_geometric_mean(parts)


def _path(value: str, base: Path) -> str:
    """A path relative to the run file's folder (a model name that is no path stays as it is)."""
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def read_run_file(path: str | Path) -> dict[str, Any]:
    """The keyword arguments of :func:`molvae.optimize.optimize` (``model`` and ``objective`` included)
    that a TOML run file states. :raises ConfigError: a missing or unreadable file, TOML syntax, an
    unknown key, a wrong type or value; :raises ObjectiveError: a bad objective spec or transform."""
    import tomllib

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"run file {str(file)!r} not found" if not file.exists() else f"{file}: not a file")
    try:
        spec = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a text file (UTF-8 TOML expected)") from None
    _checked(spec, _TOP, "the top level", str(file))
    if spec.get("method") is not None and spec["method"] not in METHODS:
        raise ConfigError(f"{file}: method must be one of {', '.join(METHODS)}, got {spec['method']!r}")
    if not all(isinstance(c, str) for c in spec.get("constraints", [])):
        raise ConfigError(f"{file}: constraints must be a list of strings such as \"sa<=4.5\"")
    oracle = _checked(spec.get("oracle", {}), _ORACLE, "[oracle]", str(file))
    base = file.resolve().parent
    kwargs: dict[str, Any] = {"objective": _combined(spec, str(file))}
    for key in ("budget", "method", "seed", "storage", "n_decode", "temperature", "bound", "patience",
                "max_points", "options"):
        if key in spec:
            kwargs[key] = spec[key]
    if "study" in spec:
        kwargs["study_name"] = spec["study"]
    if spec.get("constraints"):
        kwargs["constraints"] = list(spec["constraints"])
    if "model" in spec:
        kwargs["model"] = _path(spec["model"], base) if (base / spec["model"]).exists() else spec["model"]
    for key in ("out", "seeds"):
        if key in spec:
            kwargs[key] = _path(spec[key], base)
    if "seeds" in kwargs and not Path(kwargs["seeds"]).is_file():
        raise ConfigError(f"{file}: seeds file {kwargs['seeds']!r} not found")
    for key, arg in (("workers", "oracle_workers"), ("timeout", "oracle_timeout"), ("batch", "oracle_batch")):
        if key in oracle:
            kwargs[arg] = oracle[key]
    if "oracle_timeout" in kwargs and kwargs["oracle_timeout"] <= 0:
        raise ConfigError(f"{file}: timeout in [oracle] must be a positive number of seconds")
    if isinstance(kwargs["objective"], list) and "method" not in kwargs:
        kwargs["method"] = "nsga2"
    return kwargs
