"""Objectives: named scores of one molecule, to be maximized, and how to get one from a spec.

A spec is what a user types after ``--objective``: a built-in name, ``similarity:<SMILES>``,
``smarts:<SMARTS>``, ``path/to/file.py:function``, ``exec:CMD`` (an external program),
``sum:qed=0.7,logp=0.3``, ``product:qed,similarity:CCO`` or ``0.7*qed + 0.3*sa_norm``, optionally
followed by a direction or a desirability transform: ``logp:min``, ``mw:double_sigmoid(300, 500)``.
From Python, any callable taking a SMILES string or an RDKit Mol works too.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import math
import re
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

from rdkit import Chem

from molvae.chem import morgan_fingerprint, parse_smiles, sa_score, PROPERTIES
from molvae.errors import MolVAEError, ObjectiveError
from molvae.objectives import classic, guacamol
from molvae.objectives.program import DEFAULT_TIMEOUT, Program
from molvae.objectives.scoring import Smarts
from molvae.objectives.transforms import Transform, parse_transform

__all__ = [
    "Objective",
    "ObjectiveLike",
    "get_objective",
    "list_objectives",
    "describe_objectives",
    "weighted_sum",
    "weighted_geometric_mean",
    "product",
    "transformed",
    "minimized",
    "program_objective",
    "measured",
]


class Objective:
    """A named score of one molecule, to be maximized.

    ``obj(smiles)`` parses the SMILES and returns a float, or ``None`` when the SMILES is invalid or
    the function gives no finite number (``None``/NaN/inf). ``obj.score_mol(mol)`` scores a sanitized
    Mol directly. An exception inside the scoring function is raised as :class:`ObjectiveError`
    naming the objective and the molecule.

    ``spec`` is the string that rebuilds the objective with :func:`get_objective` (``None`` for an
    objective built from a Python callable), so optimizers can store it with a run.

    ``batch`` (optional) scores a list of canonical SMILES at once, giving ``(score, reason)`` per
    molecule; the oracle then hands the objective whole batches (:meth:`score_batch`). ``program`` is
    the :class:`~molvae.objectives.program.Program` behind an ``exec:`` objective.
    """

    def __init__(self, name: str, fn: Callable[[Chem.Mol], float], description: str = "", spec: str | None = None,
                 batch: Callable[[list[str]], list[tuple[float | None, str | None]]] | None = None,
                 program: Program | None = None) -> None:
        self.name = name
        self.description = description
        self.spec = spec
        self._fn = fn
        self._batch = batch
        self.program = program

    @property
    def batched(self) -> bool:
        """True when the objective scores whole batches (an external program)."""
        return self._batch is not None

    def score_batch(self, smiles: list[str]) -> list[tuple[float | None, str | None]]:
        """``(score, reason)`` per molecule for a batch of canonical SMILES (batched objectives only)."""
        if self._batch is None:
            raise TypeError(f"objective {self.name!r} scores one molecule at a time")
        return self._batch(list(smiles))

    def score_mol(self, mol: Chem.Mol) -> float:
        """Score of a sanitized Mol (NaN where the function returns no number)."""
        try:
            value = self._fn(mol)
        except MolVAEError:
            raise
        except Exception as exc:
            smiles = Chem.MolToSmiles(mol) if isinstance(mol, Chem.Mol) else mol
            raise ObjectiveError(
                f"objective {self.name!r} failed on {smiles!r}: {type(exc).__name__}: {exc}".strip()
            ) from exc
        if value is None:
            return math.nan
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ObjectiveError(
                f"objective {self.name!r} returned {type(value).__name__} {value!r}, expected a number"
            ) from None

    def __call__(self, smiles: str | Chem.Mol) -> float | None:
        if isinstance(smiles, Chem.Mol):
            mol = smiles
        else:
            mol, _ = parse_smiles(smiles)
            if mol is None:
                return None
        value = self.score_mol(mol)
        return value if math.isfinite(value) else None

    def score_many(self, smiles: Iterable[str | None]) -> list[float | None]:
        """Scores of many SMILES in order (``None`` where invalid)."""
        return [None if s is None else self(s) for s in smiles]

    def __reduce__(self):
        # pickle by spec (the scoring closures are not picklable); objectives from callables cannot be
        if self.program is not None and self.spec == f"exec:{self.program.command}":
            return (program_objective, (self.program.command, self.program.timeout))
        if self.spec is None:
            raise TypeError(f"objective {self.name!r} was built from a Python callable and cannot be pickled; "
                            "use a spec string (e.g. 'file.py:function') to send it to other processes")
        return (get_objective, (self.spec,))

    def __repr__(self) -> str:
        return f"Objective({self.name!r})"


ObjectiveLike = Union[str, Callable, Objective]


# --------------------------------------------------------------------------- built-ins


def _sa_norm(mol: Chem.Mol) -> float:
    return (10.0 - sa_score(mol)) / 9.0


_CLASSIC: dict[str, tuple[Callable[[], Callable[[Chem.Mol], float]], str]] = {
    "logp": (lambda: PROPERTIES["logp"], "Crippen logP (RDKit)"),
    "penalized_logp": (
        lambda: classic.penalized_logp,
        "logP - SA - long-ring penalty, each standardized with the ZINC-250k constants (JT-VAE convention)",
    ),
    "penalized_logp_raw": (
        lambda: classic.penalized_logp_raw,
        "logP - SA - max(largest ring - 6, 0), unstandardized (GCPN/LIMO convention)",
    ),
    "sa": (lambda: lambda m: -sa_score(m), "minus the SA score (SA: 1 easy .. 10 hard), so higher is easier to make"),
    "sa_norm": (lambda: _sa_norm, "(10 - SA) / 9: synthetic accessibility in [0, 1], 1 easiest"),
    "mw": (lambda: PROPERTIES["mw"], "molecular weight (Da)"),
    "tpsa": (lambda: PROPERTIES["tpsa"], "topological polar surface area"),
}

_BUILTINS = {**_CLASSIC, **guacamol.TASKS}
_CACHE: dict[str, Objective] = {}

_FORMS = ("similarity:<SMILES>, smarts:<SMARTS>, FILE.py:FUNCTION, exec:CMD, sum:A=W,B=W, product:A,B; "
          "any of them followed by :min or a transform such as :sigmoid(LOW, HIGH)")


def list_objectives() -> list[str]:
    """Names of the built-in objectives (the parametrized forms are described in :func:`get_objective`)."""
    return sorted(_BUILTINS)


def describe_objectives() -> dict[str, str]:
    """Built-in name -> one-line description, for ``--list`` style help."""
    return {name: _BUILTINS[name][1] for name in sorted(_BUILTINS)}


def _builtin(name: str) -> Objective:
    if name not in _CACHE:
        factory, description = _BUILTINS[name]
        _CACHE[name] = Objective(name, factory(), description, spec=name)
    return _CACHE[name]


# --------------------------------------------------------------------------- parametrized forms


def _similarity(target: str) -> Objective:
    mol, reason = parse_smiles(target)
    if mol is None:
        raise ObjectiveError(f"invalid similarity target {target!r}: {reason}")
    from rdkit import DataStructs

    ref = morgan_fingerprint(mol, 2, 2048)

    def score(m: Chem.Mol) -> float:
        return DataStructs.TanimotoSimilarity(morgan_fingerprint(m, 2, 2048), ref)

    spec = f"similarity:{target}"
    return Objective(spec, score, f"Morgan radius-2 (2048 bits) Tanimoto similarity to {target}", spec=spec)


def _smarts(pattern: str) -> Objective:
    spec = f"smarts:{pattern}"
    return Objective(spec, Smarts(pattern), f"1 if the molecule contains {pattern}, else 0", spec=spec)


def program_objective(command: str, timeout: float = DEFAULT_TIMEOUT) -> Objective:
    """``exec:CMD``: scores printed by an external program, a batch at a time (:mod:`molvae.objectives.program`)."""
    program = Program(command, timeout)

    def one(mol: Chem.Mol) -> float:
        score, _ = program([Chem.MolToSmiles(mol)])[0]
        return math.nan if score is None else score

    spec = f"exec:{command}"
    return Objective(spec, one, f"scores printed by the program {command!r}", spec=spec, batch=program,
                     program=program)


def measured(name: str) -> Objective:
    """``lab:NAME``: a score measured outside molvae (a lab, a queue), told to an ask/tell study
    (:mod:`molvae.optimize.asktell`); molvae itself cannot compute it."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name or ""):
        raise ObjectiveError(f"lab objective needs a name of letters, digits, '_', '.' or '-', e.g. lab:pIC50; got {name!r}")

    def score(mol: Chem.Mol) -> float:
        raise ObjectiveError(f"lab:{name} is measured outside molvae: ask for molecules and tell their scores "
                             "(molvae optimize --ask N / --tell DIR FILE)")

    return Objective(f"lab:{name}", score, f"{name}, measured outside molvae and told", spec=f"lab:{name}")


def _mapped(base: Objective, f: Callable[[float], float], spec: str | None, description: str) -> Objective:
    """``f`` applied to ``base``'s score, batch-wise when ``base`` is batched; NaN stays NaN."""
    def score(mol: Chem.Mol) -> float:
        value = base.score_mol(mol)
        return f(value) if math.isfinite(value) else math.nan

    batch = None
    if base.batched:
        def batch(smiles: list[str]) -> list[tuple[float | None, str | None]]:
            return [(None if v is None else f(v), r) for v, r in base.score_batch(smiles)]
    name = spec or f"{base.name}:{description}"
    return Objective(name, score, f"{base.description} -> {description}", spec=spec, batch=batch,
                     program=base.program)


def transformed(objective: ObjectiveLike, transform: Transform | str) -> Objective:
    """``objective`` through a desirability transform (``"sigmoid(1, 3)"`` or a :class:`Transform`)."""
    base = get_objective(objective)
    t = parse_transform(transform) if isinstance(transform, str) else transform
    spec = f"{base.spec}:{t.text}" if base.spec is not None else None
    return _mapped(base, t, spec, t.text)


def minimized(objective: ObjectiveLike) -> Objective:
    """``objective`` to be minimized: the optimizer maximizes minus its value (``NAME:min``)."""
    base = get_objective(objective)
    return _mapped(base, lambda v: -v, f"{base.spec}:min" if base.spec is not None else None, "min")


_SUFFIX = re.compile(r"^(?P<base>.+?):(?P<suffix>min|max|[a-z_]+\([^()]*\))$", re.IGNORECASE)
_TRANSFORM_NAME = re.compile(r"^(sigmoid|reverse_sigmoid|double_sigmoid|step)\(", re.IGNORECASE)


def _with_suffix(text: str) -> Objective | None:
    """``BASE:min``, ``BASE:max`` or ``BASE:<transform>(...)``; None when ``text`` has no such suffix."""
    match = _SUFFIX.match(text)
    if match is None or match["base"].strip().lower().endswith(".py"):  # file.py:min is a function
        return None
    suffix = match["suffix"]
    if suffix.lower() in ("min", "max"):
        base = _from_spec(match["base"])
        return base if suffix.lower() == "max" else minimized(base)
    if not _TRANSFORM_NAME.match(suffix):
        return None
    return transformed(_from_spec(match["base"]), parse_transform(suffix.lower(), where=f"objective {text!r}"))


_FILE_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<func>[A-Za-z_]\w*)$")


def _load_file_function(file: str, func: str) -> Callable:
    path = Path(file).expanduser()
    if not path.is_file():
        raise ObjectiveError(f"objective file '{file}' not found")
    module_name = "molvae_user_objective_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ObjectiveError(f"cannot load objective file '{file}'")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # lets functions defined there be pickled by reference
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise ObjectiveError(f"cannot load objective file '{file}', line {exc.lineno}: SyntaxError: {exc.msg}") from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
        where = f", line {frames[-1].lineno}" if frames else ""
        raise ObjectiveError(f"cannot load objective file '{file}'{where}: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, func, None)
    if fn is None:
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module_name)
        hint = f"; it defines: {', '.join(defined)}" if defined else ""
        raise ObjectiveError(f"objective file '{file}' has no function '{func}'{hint}")
    if not callable(fn):
        raise ObjectiveError(f"'{func}' in objective file '{file}' is a {type(fn).__name__}, not a function")
    return fn


_PROBE = "Oc1ccccc1"  # phenol: what a user function is tried on when its signature does not say


def _annotation_kind(fn: Callable) -> str | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params or params[0].annotation is inspect.Parameter.empty:
        return None
    ann = params[0].annotation
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    if ann is Chem.Mol or re.search(r"\bMol\b", str(text)):
        return "mol"
    if ann is str or text == "str":
        return "smiles"
    return None


def _is_number(value: object) -> bool:
    if value is None:
        return True  # "no score" is allowed
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def _argument_kind(fn: Callable, label: str) -> str:
    """'smiles' or 'mol': what ``fn`` takes. Annotations decide; otherwise try it on phenol."""
    kind = _annotation_kind(fn)
    if kind is not None:
        return kind
    probe_mol = Chem.MolFromSmiles(_PROBE)
    errors = []
    for kind, arg in (("smiles", _PROBE), ("mol", probe_mol)):
        try:
            value = fn(arg)
        except Exception as exc:  # the wrong argument type usually raises
            errors.append(f"{type(exc).__name__}: {exc}".strip())
            continue
        if _is_number(value):
            return kind
        errors.append(f"returned {type(value).__name__}, expected a number")
    raise ObjectiveError(
        f"objective {label} works neither on a SMILES string ({errors[0]}) nor on an RDKit Mol ({errors[1]})"
    )


def _from_callable(fn: Callable, name: str | None = None, spec: str | None = None) -> Objective:
    label = name or getattr(fn, "__name__", None) or type(fn).__name__
    kind = _argument_kind(fn, repr(label))
    if kind == "mol":
        scorer = fn
    else:
        def scorer(mol: Chem.Mol, _fn: Callable = fn) -> float:
            return _fn(Chem.MolToSmiles(mol))
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    description = doc[0] if doc else f"user function taking a {'RDKit Mol' if kind == 'mol' else 'SMILES string'}"
    return Objective(label, scorer, description, spec=spec)


# --------------------------------------------------------------------------- combinations


def weighted_sum(terms: Sequence[tuple[ObjectiveLike, float]], name: str | None = None) -> Objective:
    """``sum(w * obj(mol))``; NaN if any term has no score. Weights may be negative."""
    if not terms:
        raise ObjectiveError("a weighted sum needs at least one term")
    parts = [(get_objective(o), float(w)) for o, w in terms]

    def score(mol: Chem.Mol) -> float:
        return sum(w * o.score_mol(mol) for o, w in parts)

    label = name or " + ".join(f"{w:g}*{o.name}" for o, w in parts)
    spec = None
    if all(o.spec is not None for o, _ in parts):
        spec = "sum:" + ",".join(f"{o.spec}={w:g}" for o, w in parts)
    return Objective(label, score, "weighted sum of " + ", ".join(o.name for o, _ in parts), spec=spec)


def product(objectives: Sequence[ObjectiveLike], name: str | None = None) -> Objective:
    """``prod(obj(mol))``: every factor must be good (use objectives in [0, 1], e.g. qed, sa_norm, similarity)."""
    if not objectives:
        raise ObjectiveError("a product needs at least one factor")
    parts = [get_objective(o) for o in objectives]

    def score(mol: Chem.Mol) -> float:
        value = 1.0
        for o in parts:
            value *= o.score_mol(mol)
        return value

    label = name or " * ".join(o.name for o in parts)
    spec = "product:" + ",".join(o.spec for o in parts) if all(o.spec is not None for o in parts) else None
    return Objective(label, score, "product of " + ", ".join(o.name for o in parts), spec=spec)


def weighted_geometric_mean(terms: Sequence[tuple[ObjectiveLike, float]], name: str | None = None) -> Objective:
    """``prod(obj(mol) ** (w / sum(w)))`` for desirabilities in [0, 1] (REINVENT's geometric mean):
    a molecule must do well on every term; a negative term gives no score. Weights must be positive."""
    if not terms:
        raise ObjectiveError("a geometric mean needs at least one term")
    parts = [(get_objective(o), float(w)) for o, w in terms]
    if any(not (w > 0 and math.isfinite(w)) for _, w in parts):
        raise ObjectiveError("weights of a geometric mean must be positive numbers")
    total = sum(w for _, w in parts)

    def score(mol: Chem.Mol) -> float:
        values = [(o.score_mol(mol), w / total) for o, w in parts]
        if any(not math.isfinite(v) or v < 0 for v, _ in values):
            return math.nan
        return math.prod(v ** w for v, w in values)

    label = name or "geomean(" + ", ".join(f"{o.name}^{w:g}" for o, w in parts) + ")"
    return Objective(label, score, "weighted geometric mean of " + ", ".join(o.name for o, _ in parts))


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets, so SMARTS like ``[C,N]`` stay whole."""
    parts, current, depth = [], [], 0
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _check_term(term: str, spec: str) -> str:
    if not term:
        raise ObjectiveError(f"empty term in objective {spec!r}")
    if term.lower().startswith(("sum:", "product:")) or _EXPR_TERM.match(term):
        raise ObjectiveError(
            f"nested combination {term!r} in objective {spec!r}; build it in Python with weighted_sum()/product()"
        )
    return term


def _parse_sum(spec: str) -> Objective:
    terms = []
    for part in _split_top_level(spec.split(":", 1)[1], ","):
        head, eq, tail = part.rpartition("=")
        weight = _parse_float(tail) if eq else None
        term, w = (head.strip(), weight) if weight is not None else (part, 1.0)
        terms.append((_from_spec(_check_term(term, spec)), w))
    return weighted_sum(terms)


def _parse_product(spec: str) -> Objective:
    factors = [_from_spec(_check_term(p, spec)) for p in _split_top_level(spec.split(":", 1)[1], ",")]
    return product(factors)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EXPR_TERM = re.compile(rf"^\s*(?P<w>{_NUMBER})\s*\*\s*(?P<term>\S.*?)\s*$")


def _parse_expression(spec: str) -> Objective:
    # terms are separated by ' + ' or ' - ' with whitespace around, which no SMILES/SMARTS contains
    pieces = re.split(r"\s+([+-])\s+", spec.strip())
    terms, sign = [], 1.0
    for i, piece in enumerate(pieces):
        if i % 2 == 1:
            sign = 1.0 if piece == "+" else -1.0
            continue
        match = _EXPR_TERM.match(piece)
        weight, term = (float(match["w"]), match["term"]) if match else (1.0, piece.strip())
        terms.append((_from_spec(_check_term(term, spec)), sign * weight))
    return weighted_sum(terms)


def _unknown(spec: str) -> ObjectiveError:
    close = difflib.get_close_matches(spec.lower(), list(_BUILTINS), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ObjectiveError(f"unknown objective {spec!r}{hint} known: {', '.join(sorted(_BUILTINS))}; or {_FORMS}")


def _from_spec(spec: str) -> Objective:
    text = spec.strip()
    if not text:
        raise ObjectiveError("empty objective name")
    lower = text.lower()
    if lower in _BUILTINS:
        return _builtin(lower)
    if lower.startswith("exec:"):
        return program_objective(text.split(":", 1)[1].strip())
    if lower.startswith("lab:"):
        return measured(text.split(":", 1)[1].strip())
    suffixed = _with_suffix(text)
    if suffixed is not None:
        return suffixed
    if lower.startswith("sum:"):
        return _parse_sum(text)
    if lower.startswith("product:"):
        return _parse_product(text)
    if _EXPR_TERM.match(text) or re.search(r"\s[+-]\s", text):
        return _parse_expression(text)
    if lower.startswith("similarity:"):
        return _similarity(text.split(":", 1)[1].strip())
    if lower.startswith("smarts:"):
        return _smarts(text.split(":", 1)[1].strip())
    match = _FILE_SPEC.match(text)
    if match:
        return _from_callable(_load_file_function(match["file"], match["func"]), name=text, spec=text)
    if text.endswith(".py"):
        raise ObjectiveError(f"objective file {text!r} needs a function name: {text}:FUNCTION")
    raise _unknown(text)


def get_objective(spec: ObjectiveLike) -> Objective:
    """Build an :class:`Objective` from a spec, a Python callable, or return an Objective unchanged.

    String specs:

    - a built-in name (:func:`list_objectives`): ``qed``, ``logp``, ``penalized_logp`` (standardized),
      ``penalized_logp_raw``, ``sa`` (minus the SA score, so that maximizing favours easy synthesis;
      constraints use the plain score, ``sa<=4.5``), ``sa_norm`` ((10 - SA) / 9), ``mw``, ``tpsa`` and
      the 20 PMO/GuacaMol tasks (``celecoxib_rediscovery``, ...);
    - ``similarity:<SMILES>``: Morgan radius-2, 2048-bit Tanimoto similarity to that molecule;
    - ``smarts:<SMARTS>``: 1.0 if the molecule contains the pattern, else 0.0;
    - ``path/to/file.py:function``: a user function (see below);
    - ``exec:CMD``: an external program reading SMILES on stdin and printing one score per line
      (:mod:`molvae.objectives.program`);
    - ``lab:NAME``: measured outside molvae and told to an ask/tell study;
    - ``sum:qed=0.7,logp=0.3`` (weights after the last ``=``, default 1), ``product:qed,similarity:CCO``,
      or ``0.7*qed + 0.3*sa_norm`` (terms separated by `` + `` / `` - `` with spaces);
    - any of these followed by ``:min`` (minimize it) or by a desirability transform
      (:mod:`molvae.objectives.transforms`): ``mw:double_sigmoid(300, 500)``, ``sa:reverse_sigmoid(2, 5)``.

    A user function (from a file or passed as a callable) takes one molecule and returns a number
    (``None`` for "no score"). Whether it takes a SMILES string or an RDKit Mol is decided by the
    annotation of its first parameter (``str`` or ``Chem.Mol``); without one, it is called once on
    phenol as a SMILES string and, if that raises or returns a non-number, as a Mol. SMILES-taking
    functions receive canonical SMILES.

    :raises ObjectiveError: unknown name (with close matches), invalid SMILES/SMARTS, missing file or
        function, a function that works on neither argument type.
    """
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        return _from_spec(spec)
    if callable(spec):
        return _from_callable(spec)
    raise ObjectiveError(f"cannot use {type(spec).__name__} {spec!r} as an objective; expected a name, spec string or callable")
