"""Reading SMILES sources, cleaning them with a report, splits, writing results (named datasets: :mod:`molvae.datasets`).

    >>> data = prepare_molecules("data/moses_sample.smi", max_len=120)
    >>> print(data.summary())
    >>> train_idx, val_idx = split_train_val(len(data.smiles), 0.1, seed=0)

Bulk input treats a bad row as data: every row read ends up either kept or in ``rejects`` with
its line number and a reason (RDKit's own message for invalid molecules), never silently dropped.
Errors that make a whole source unusable (missing file, empty file, unknown column, nothing
usable) raise :class:`~molvae.errors.DataError` with a one-line message naming the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from molvae._pool import parallel_map
from molvae.datasets import (  # named datasets: re-exported, they lived here before
    DATASETS,
    MOSES_FILES,
    MOSES_PACKAGE,
    ZINC250K_FILE,
    ZINC250K_ROWS,
    ZINC250K_SHA256,
    ZINC250K_URL,
    _cache_dir,
    _sha256,
    download_dataset,
    named_dataset,
)
from molvae.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from molvae.vocab import Vocab

__all__ = [
    "read_smiles",
    "read_generated",
    "prepare_molecules",
    "PreparedData",
    "split_train_val",
    "write_molecules",
    "named_dataset",
    "download_dataset",
    "DATASETS",
    "SMILES_COLUMNS",
]

SMILES_COLUMNS = ("smiles", "SMILES", "canonical_smiles", "Smiles")
"""Column names searched, in this order, when no SMILES column is given (then any case of 'smiles')."""
NAME_COLUMNS = ("name", "Name", "NAME", "id", "ID", "Id", "title", "zinc_id", "mol_id", "molecule_id")
"""Column names taken as the molecule's name, if present."""
MOL_COLUMNS = ("mol", "Mol", "ROMol", "molecule")
"""DataFrame columns holding RDKit Mols, searched after the SMILES columns."""

_SMILES_EXT = (".smi", ".smiles", ".txt")
_TABLE_EXT = {".csv": ",", ".tsv": "\t"}
_SDF_EXT = (".sdf", ".sd", ".mol")

PARALLEL_MIN_ROWS = 20_000
"""Below this many rows :func:`prepare_molecules` works in-process (a pool costs more than it saves)."""


# --------------------------------------------------------------------------------------------
# reading


def _split_ext(path: Path) -> tuple[str, bool]:
    """(format extension, gzipped) of a path, e.g. ``x.csv.gz -> ('.csv', True)``."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def _open_text(path: Path, gz: bool):
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _frame(inputs: list, lines: list[int], names: list, errors: list | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"input": pd.Series(inputs, dtype=object), "line": pd.Series(lines, dtype="int64"),
                       "name": pd.Series(names, dtype=object)})
    if errors is not None:
        df["error"] = pd.Series(errors, dtype=object)
    return df


def _find_column(columns: Sequence[str], wanted: str | None, where: str) -> str:
    cols = [str(c) for c in columns]
    if wanted is not None:
        if wanted in cols:
            return wanted
        raise DataError(f"{where}: no column {wanted!r}; available columns: {', '.join(cols) or '(none)'}")
    for c in SMILES_COLUMNS:
        if c in cols:
            return c
    for c in cols:
        if c.strip().lower() == "smiles":
            return c
    raise DataError(
        f"{where}: no SMILES column found (looked for {', '.join(SMILES_COLUMNS)}); "
        f"available columns: {', '.join(cols) or '(none)'}; choose one with --smiles-column / smiles_column="
    )


def _read_smi(path: Path, gz: bool) -> pd.DataFrame:
    inputs, lines, names = [], [], []
    with _open_text(path, gz) as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text:
                continue
            parts = text.split(None, 1)
            if lineno == 1 and parts[0].lower() in ("smiles", "canonical_smiles"):
                continue  # a header line: counted in the numbering, not a molecule
            inputs.append(parts[0])
            lines.append(lineno)
            names.append(parts[1].strip() if len(parts) > 1 else None)
    return _frame(inputs, lines, names)


def _missing_column(where: str, wanted: Sequence[str], columns: Sequence[str], label: str) -> None:
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"{where}: no {label} {missing[0]!r}; columns: {', '.join(map(str, columns))}")


def _read_table(path: Path, gz: bool, sep: str, smiles_column: str | None, extra_columns: Sequence[str] = (),
                extra_label: str = "column") -> pd.DataFrame:
    inputs, lines, names = [], [], []
    extras: list[list[str]] = [[] for _ in extra_columns]
    with _open_text(path, gz) as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = None
        prev = 0  # physical lines consumed before the current record (records may span lines)
        for row in reader:
            start, prev = prev + 1, reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [c.strip() for c in row]
                col = header.index(_find_column(header, smiles_column, str(path)))
                name_col = next((header.index(c) for c in NAME_COLUMNS if c in header), None)
                _missing_column(str(path), extra_columns, header, extra_label)
                extra_idx = [header.index(c) for c in extra_columns]
                continue
            inputs.append(row[col].strip() if col < len(row) else "")
            lines.append(start)
            names.append(row[name_col].strip() or None if name_col is not None and name_col < len(row) else None)
            for values, i in zip(extras, extra_idx):
                values.append(row[i] if i < len(row) else "")
    if header is None:
        raise DataError(f"{path}: file is empty")
    df = _frame(inputs, lines, names)
    for name, values in zip(extra_columns, extras):
        df[name] = pd.Series(values, dtype=object)
    return df


def _read_sdf(path: Path, gz: bool) -> pd.DataFrame:
    from rdkit import Chem

    from molvae.chem import quiet_rdkit

    inputs, lines, names, errors = [], [], [], []
    fh = gzip.open(path, "rb") if gz else open(path, "rb")
    with fh, quiet_rdkit():
        supplier = Chem.ForwardSDMolSupplier(fh, sanitize=False, removeHs=False)
        for i, mol in enumerate(supplier, start=1):
            if mol is None:
                inputs.append(None), names.append(None), errors.append("SDF record could not be parsed")
            else:
                name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
                names.append(name or None)
                try:
                    Chem.SanitizeMol(mol)
                    mol = Chem.RemoveHs(mol)
                    inputs.append(Chem.MolToSmiles(mol))
                    errors.append(None)
                except Exception as exc:  # RDKit raises several sanitization exception types
                    try:
                        inputs.append(Chem.MolToSmiles(mol))
                    except Exception:
                        inputs.append(None)
                    errors.append(f"sanitization failed: {str(exc).strip()}")
            lines.append(i)
    return _frame(inputs, lines, names, errors)


def _mol_to_smiles(x: Any) -> Any:
    """SMILES for an RDKit Mol (isomeric, as is), other values unchanged."""
    if x is not None and type(x).__name__ in ("Mol", "RWMol"):
        from rdkit import Chem

        return Chem.MolToSmiles(x)
    return x


def _from_values(values: Iterable, names: Sequence | None = None) -> pd.DataFrame:
    inputs = []
    for v in values:
        v = _mol_to_smiles(v)
        if isinstance(v, float) and np.isnan(v):
            v = None
        inputs.append(v if v is None or isinstance(v, str) else str(v))
    lines = list(range(1, len(inputs) + 1))
    names = [None if (n is None or (isinstance(n, float) and np.isnan(n))) else str(n) for n in names] if names is not None else [None] * len(inputs)
    return _frame(inputs, lines, names)


def read_smiles(source: Any, smiles_column: str | None = None, extra_columns: Sequence[str] = (),
                extra_label: str = "column") -> pd.DataFrame:
    """Read molecules as a table with columns ``input``, ``line``, ``name``.

    ``source`` is a path (``.smi``/``.txt`` with an optional name column, ``.csv``/``.tsv``,
    ``.sdf``; any of them ``.gz``), a named dataset (``moses-train``, ``zinc250k``, ...), or in
    memory: a list of SMILES strings / RDKit Mols, a pandas Series or DataFrame.
    ``line`` is the 1-based line in the file (a header line counts), the SDF record number, or the
    1-based position for in-memory input. SDF input adds an ``error`` column (None, or why RDKit
    could not use the record). Values are not validated here (see :func:`prepare_molecules`).
    ``extra_columns`` of a CSV/TSV file or a DataFrame come back as columns of the same name (raw
    values; error messages call them ``extra_label``, e.g. "condition column").

    :raises DataError: missing or empty file, unsupported file type, unknown column.
    """
    extra_columns = list(extra_columns)
    if extra_columns and not isinstance(source, (pd.DataFrame, str, os.PathLike)):
        raise DataError(f"{extra_label}s need a CSV/TSV file or a DataFrame, got a {type(source).__name__}")
    if isinstance(source, pd.DataFrame):
        if smiles_column is None and not any(c in source.columns for c in SMILES_COLUMNS):
            mol_col = next((c for c in MOL_COLUMNS if c in source.columns), None)
            col = mol_col if mol_col is not None else _find_column(list(source.columns), None, "DataFrame")
        else:
            col = _find_column(list(source.columns), smiles_column, "DataFrame")
        name_col = next((c for c in NAME_COLUMNS if c in source.columns), None)
        df = _from_values(source[col].tolist(), source[name_col].tolist() if name_col is not None else None)
        _missing_column("DataFrame", extra_columns, list(source.columns), extra_label)
        for name in extra_columns:
            df[name] = pd.Series(source[name].tolist(), dtype=object)
    elif isinstance(source, pd.Series):
        df = _from_values(source.tolist())
    elif isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source), smiles_column, extra_columns, extra_label)
    elif isinstance(source, Iterable):
        df = _from_values(list(source))
    else:
        raise DataError(f"cannot read molecules from a {type(source).__name__}; expected a path, a list, a Series or a DataFrame")
    if df.empty:
        raise DataError(f"<{type(source).__name__}>: no rows")
    return df


def read_generated(source: Any) -> list[str | None]:
    """Generated SMILES, one per molecule, ``None`` where a molecule is missing or invalid: in a
    ``.smi``/``.txt`` file (optionally .gz) every line is one molecule and a blank line an invalid one
    (``molvae sample`` writes failed decodes as blank lines; a ``smiles`` header line is skipped);
    anything else goes through :func:`read_smiles` (a path, a named dataset, a list).

    :raises DataError: an unreadable, missing or empty source, or an empty list.
    """
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        path = Path(source)
        ext, gz = _split_ext(path)
        if ext in _SMILES_EXT:
            try:
                with _open_text(path, gz) as fh:
                    lines = fh.read().splitlines()
            except (OSError, EOFError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot read file: {exc}") from None
            if lines and lines[0].split()[:1] and lines[0].split()[0].lower() in ("smiles", "canonical_smiles"):
                lines = lines[1:]
            if not any(line.strip() for line in lines):
                raise DataError(f"{path}: file is empty (no molecules to evaluate)")
            return [line.split()[0] if line.strip() else None for line in lines]
    if isinstance(source, (list, tuple)) and not source:
        raise DataError("generated molecules: no molecules given")
    if isinstance(source, np.ndarray):
        source = source.tolist()
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists() and str(source) not in DATASETS:
        raise DataError(f"generated molecules: {source}: no such file or named dataset "
                        f"(named sets: {', '.join(DATASETS)})")
    return [s if isinstance(s, str) else None for s in read_smiles(source)["input"].tolist()]


def _read_path(path: Path, smiles_column: str | None, extra_columns: Sequence[str] = (),
               extra_label: str = "column") -> pd.DataFrame:
    if not path.exists() and str(path) in DATASETS:
        path = named_dataset(str(path))
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a SMILES, CSV/TSV or SDF file")
    ext, gz = _split_ext(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
        if extra_columns and ext not in _TABLE_EXT:
            raise DataError(f"{path}: {extra_label}s need a CSV or TSV file (with a header), "
                            f"got {ext or 'no extension'!r}")
        if ext in _SMILES_EXT:
            df = _read_smi(path, gz)
        elif ext in _TABLE_EXT:
            df = _read_table(path, gz, _TABLE_EXT[ext], smiles_column, extra_columns, extra_label)
        elif ext in _SDF_EXT:
            df = _read_sdf(path, gz)
        else:
            raise DataError(
                f"{path}: unsupported file type {ext or '(no extension)'!r}; "
                "expected .smi, .txt, .csv, .tsv or .sdf, optionally .gz"
            )
    except (OSError, EOFError, gzip.BadGzipFile, csv.Error) as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from None
    if df.empty:
        raise DataError(f"{path}: file is empty")
    return df


# --------------------------------------------------------------------------------------------
# cleaning


@dataclass
class PreparedData:
    """Molecules ready for the model, and what happened to every row read.

    ``smiles``/``selfies``/``lines``/``names`` are parallel lists of the kept molecules in input
    order. ``rejects`` has one row (line, input, reason) per row not kept. ``counts`` has keys
    read, invalid, duplicate, too_long, not_encodable, unknown_token, kept (they add up).
    """

    smiles: list[str]
    selfies: list[str]
    lines: list[int]
    names: list[str | None]
    rejects: pd.DataFrame
    counts: dict[str, int]
    source: str
    reject_kinds: list[str] = field(default_factory=list, repr=False)
    unknown_skipped: int = 0
    """Kept molecules that lost unknown tokens (``skip_unknown=True``)."""
    cache_path: Path | None = field(default=None, repr=False)
    """The :mod:`molvae.prepared` cache entry these data were read from or stored in (None: not cached)."""

    def __len__(self) -> int:
        return len(self.smiles)

    def summary(self, examples: int = 3) -> str:
        """Human report: counts, and the first few line numbers of each kind of reject with reasons."""
        c = self.counts
        parts = [f"{c['kept']} kept"]
        for key, label in _KIND_LABELS.items():
            if c.get(key):
                parts.append(f"{c[key]} {label}")
        out = [f"{self.source}: read {c['read']} rows: " + ", ".join(parts)]
        if self.unknown_skipped:
            out.append(f"  {self.unknown_skipped} kept molecules had unknown tokens skipped")
        kinds = np.asarray(self.reject_kinds, dtype=object)
        for key, label in _KIND_LABELS.items():
            idx = np.flatnonzero(kinds == key)[:examples] if len(kinds) else []
            if len(idx) == 0:
                continue
            shown = "; ".join(f"line {self.rejects['line'].iat[i]}: {self.rejects['reason'].iat[i]}" for i in idx)
            more = c[key] - len(idx)
            out.append(f"  {label}: {shown}" + (f" (and {more} more)" if more > 0 else ""))
        return "\n".join(out)

    def drop(self, rows: Sequence[int], reasons: Sequence[str]) -> None:
        """Move kept molecules ``rows`` to the rejects (as invalid, with ``reasons``), e.g. molecules whose
        condition values are unusable."""
        drop = set(rows)
        extra = pd.DataFrame({"line": pd.Series([self.lines[i] for i in rows], dtype="int64"),
                              "input": pd.Series([self.smiles[i] for i in rows], dtype=object),
                              "reason": pd.Series(list(reasons), dtype=object)})
        self.rejects = pd.concat([self.rejects, extra], ignore_index=True)
        self.reject_kinds = list(self.reject_kinds) + ["invalid"] * len(rows)
        self.counts["invalid"] += len(rows)
        self.counts["kept"] -= len(rows)
        for name in ("smiles", "selfies", "lines", "names"):
            setattr(self, name, [v for i, v in enumerate(getattr(self, name)) if i not in drop])

    def write_rejects(self, path: str | Path) -> Path:
        """Write the rejects as CSV (line, input, reason); a header-only file when there are none."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rejects[["line", "input", "reason"]].to_csv(path, index=False)
        return path


_KIND_LABELS = {
    "invalid": "invalid",
    "duplicate": "duplicate",
    "too_long": "too long",
    "not_encodable": "not encodable as SELFIES",
    "unknown_token": "with unknown tokens",
}


def _clean_chunk(args: tuple) -> list[tuple]:
    """Worker: (inputs, errors, stereo, largest_fragment) -> per row (canonical, selfies, reason).

    ``reason`` is None when the molecule is fine, else starts with the reject kind it belongs to
    as ``kind|message``. Top-level so worker processes can import it.
    """
    from molvae.chem import parse_smiles, to_canonical
    from molvae.vocab import smiles_to_selfies

    inputs, errors, stereo, largest_fragment = args
    out = []
    for smi, err in zip(inputs, errors):
        if err:
            out.append((None, None, f"invalid|{err}"))
            continue
        mol, reason = parse_smiles(smi)
        if mol is None:
            out.append((None, None, f"invalid|{reason}"))
            continue
        try:
            can = to_canonical(mol, stereo=stereo, largest_fragment=largest_fragment)
        except Exception as exc:  # pragma: no cover - RDKit failures on exotic input
            out.append((None, None, f"invalid|canonicalization failed: {exc}"))
            continue
        sel = smiles_to_selfies(can)
        out.append((can, sel, None if sel is not None else "not_encodable|not encodable as SELFIES"))
    return out


def _clean_all(inputs: list, errors: list, stereo: bool, largest_fragment: bool, workers: int | None,
               progress: bool) -> list[tuple]:
    n = len(inputs)
    if workers is None:
        workers = 1 if n < PARALLEL_MIN_ROWS else (os.cpu_count() or 1)
    workers = max(1, int(workers))
    chunk = 2000 if workers == 1 else max(200, min(5000, -(-n // (workers * 8))))
    tasks = [(inputs[i:i + chunk], errors[i:i + chunk], stereo, largest_fragment) for i in range(0, n, chunk)]
    from molvae.progress import progress_bar

    bar = progress_bar(total=n, desc="checking molecules", unit="mol", disable=not progress, leave=False)
    try:
        parts = parallel_map(_clean_chunk, tasks, workers, sizes=[len(t[0]) for t in tasks], bar=bar)
    finally:
        bar.close()
    return [row for part in parts for row in part]


def _source_label(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>"


def _in_vocab(tokens: list[str], vocab: "Vocab", skip_unknown: bool) -> tuple[list[str], bool, str | None]:
    """A molecule's SELFIES tokens checked against a vocabulary: the tokens (unknown ones dropped with
    ``skip_unknown``), whether any were dropped, and why the molecule is rejected (None: it is kept)."""
    unknown = sorted({t for t in tokens if t not in vocab.stoi})
    if not unknown:
        return tokens, False, None
    if not skip_unknown:
        return tokens, False, (f"unknown token{'s' if len(unknown) > 1 else ''} {' '.join(unknown)} "
                               "not in the model's vocabulary")
    kept = [t for t in tokens if t in vocab.stoi]
    return kept, True, None if kept else "every token is unknown to the model's vocabulary"


def prepare_molecules(
    source: Any,
    *,
    max_len: int | None = None,
    stereo: bool = True,
    largest_fragment: bool = False,
    smiles_column: str | None = None,
    vocab: "Vocab | None" = None,
    skip_unknown: bool = False,
    dedupe: bool = True,
    progress: bool = False,
    workers: int | None = None,
) -> PreparedData:
    """Read, sanitize, canonicalize, deduplicate and SELFIES-encode molecules, with a report.

    Each row read is kept or rejected with one reason: invalid (RDKit's message), duplicate (of an
    earlier line, on canonical SMILES), not encodable as SELFIES, too long (more than ``max_len``
    SELFIES tokens), or unknown token (a token not in ``vocab``; with ``skip_unknown`` such tokens
    are dropped from the SELFIES instead and the molecule kept). Large inputs are checked in
    ``workers`` processes (default: all cores above :data:`PARALLEL_MIN_ROWS` rows); the result
    is identical to a serial run and in input order.

    :raises DataError: the source cannot be read, or no molecule is usable.
    """
    from molvae.vocab import split_selfies

    df = read_smiles(source, smiles_column=smiles_column)
    label = _source_label(source)
    inputs = df["input"].tolist()
    errors = df["error"].tolist() if "error" in df.columns else [None] * len(inputs)
    lines, names = df["line"].tolist(), df["name"].tolist()

    cleaned = _clean_all(inputs, errors, stereo, largest_fragment, workers, progress)

    keep_smi, keep_sel, keep_lines, keep_names = [], [], [], []
    rej_line, rej_input, rej_reason, rej_kind = [], [], [], []
    counts = {"read": len(inputs), "invalid": 0, "duplicate": 0, "too_long": 0, "not_encodable": 0,
              "unknown_token": 0, "kept": 0}
    seen: dict[str, int] = {}
    unknown_skipped = 0

    def reject(i: int, kind: str, reason: str) -> None:
        counts[kind] += 1
        rej_line.append(lines[i]), rej_input.append(inputs[i]), rej_reason.append(reason), rej_kind.append(kind)

    for i, (can, sel, why) in enumerate(cleaned):
        if can is None:
            kind, reason = why.split("|", 1)
            reject(i, kind, reason)
            continue
        if dedupe:
            first = seen.get(can)
            if first is not None:
                reject(i, "duplicate", f"duplicate of line {first}")
                continue
            seen[can] = lines[i]
        if sel is None:
            kind, reason = why.split("|", 1)
            reject(i, kind, reason)
            continue
        tokens = split_selfies(sel)
        if vocab is not None:
            tokens, dropped, problem = _in_vocab(tokens, vocab, skip_unknown)
            unknown_skipped += dropped
            if problem is not None:
                reject(i, "unknown_token", problem)
                continue
            sel = "".join(tokens) if dropped else sel
        if max_len is not None and len(tokens) > max_len:
            reject(i, "too_long", f"too long: {len(tokens)} tokens > max {max_len}")
            continue
        keep_smi.append(can), keep_sel.append(sel), keep_lines.append(lines[i]), keep_names.append(names[i])

    counts["kept"] = len(keep_smi)
    if not keep_smi:
        detail = ", ".join(f"{counts[k]} {lab}" for k, lab in _KIND_LABELS.items() if counts[k])
        raise DataError(f"{label}: no usable molecule ({counts['read']} rows read: {detail})")
    rejects = pd.DataFrame({"line": pd.Series(rej_line, dtype="int64"), "input": pd.Series(rej_input, dtype=object),
                            "reason": pd.Series(rej_reason, dtype=object)})
    return PreparedData(keep_smi, keep_sel, keep_lines, keep_names, rejects, counts, label, rej_kind, unknown_skipped)


# --------------------------------------------------------------------------------------------
# splitting and writing


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)`` into sorted (train, validation) index arrays.

    The same ``seed`` gives the same split. At least one molecule goes to each side when
    ``0 < val_fraction`` and ``n >= 2``; ``val_fraction=0`` gives an empty validation set.
    """
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def write_molecules(df: pd.DataFrame, path: str | Path | None) -> None:
    """Write a table of molecules; the format follows the file name.

    ``.smi``/``.txt``: the ``smiles`` column (plus ``name`` if present), no header, an empty line
    where a SMILES is missing so lines stay aligned with the table; ``.csv``/``.tsv``: the whole
    table; ``None`` or ``'-'``: CSV on stdout. Any of them may end in ``.gz``.
    """
    if path is None or str(path) == "-":
        df.to_csv(sys.stdout, index=False)
        return
    path = Path(path)
    ext, gz = _split_ext(path)
    if ext not in _SMILES_EXT and ext not in _TABLE_EXT:
        raise DataError(f"{path}: unsupported output type {ext or '(no extension)'!r}; expected .smi, .txt, .csv or .tsv, optionally .gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext in _TABLE_EXT:
        df.to_csv(path, sep=_TABLE_EXT[ext], index=False, compression="gzip" if gz else None)
        return
    if "smiles" not in df.columns:
        raise DataError(f"{path}: the table has no 'smiles' column to write (columns: {', '.join(map(str, df.columns))})")
    names = df["name"].tolist() if "name" in df.columns else None
    rows = []
    for i, smi in enumerate(df["smiles"].tolist()):
        if smi is None or (isinstance(smi, float) and np.isnan(smi)) or smi == "":
            rows.append("")
            continue
        name = names[i] if names is not None else None
        rows.append(f"{smi} {name}" if name is not None and not (isinstance(name, float) and np.isnan(name)) else str(smi))
    text = "\n".join(rows) + ("\n" if rows else "")
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")

