"""Per-molecule RDKit work: canonical SMILES, Morgan fingerprints, MOSES properties, BRICS fragments,
Bemis-Murcko scaffolds, the MOSES filters, and the GuacaMol descriptors and ECFP4 similarities.

``_task_*`` functions run in worker processes (:class:`molvae.metrics._runner._Runner`); the
parent-side :func:`_featurize` turns their records into one :class:`_Features` per molecule set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from molvae.metrics._runner import POOL_MIN, _CACHE, _chunks, _Runner
from molvae.metrics._similarity import _tanimoto
from molvae.progress import progress_bar

FP_RADIUS, FP_BITS = 2, 1024  # MOSES fingerprints (SNN, IntDiv)
GUACAMOL_N = 10_000  # GuacaMol sample size and reference subset size
GUACAMOL_SEED = 42
GUACAMOL_FP_BITS = 4096  # GuacaMol ECFP4 for the internal-similarity KL term
GUACAMOL_DESCRIPTORS = ("BertzCT", "MolLogP", "MolWt", "TPSA", "NumHAcceptors", "NumHDonors",
                        "NumRotatableBonds", "NumAliphaticRings", "NumAromaticRings")


def _helper(name: str) -> Any:
    if name not in _CACHE:
        if name == "fp1024":
            from rdkit.Chem import rdFingerprintGenerator

            _CACHE[name] = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)
        elif name == "fp4096":
            from rdkit.Chem import rdFingerprintGenerator

            _CACHE[name] = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=GUACAMOL_FP_BITS)
        elif name == "filters":
            _CACHE[name] = _load_filters()
        elif name == "descriptors":
            from rdkit.Chem import Descriptors

            _CACHE[name] = [getattr(Descriptors, d) for d in GUACAMOL_DESCRIPTORS]
    return _CACHE[name]


def _load_filters() -> tuple[list, np.ndarray]:
    """The MOSES alert SMARTS as query Mols, with their packed pattern fingerprints for screening."""
    import csv

    from rdkit import Chem

    path = Path(__file__).parent.with_name("data") / "moses_filters.csv"  # molvae/data/
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    queries = [Chem.MolFromSmarts(r["smarts"]) for r in rows]
    screens = np.stack([_pattern_bits(q) for q in queries])
    return queries, screens


def _pattern_bits(mol) -> np.ndarray:
    from rdkit import Chem, DataStructs

    arr = np.zeros(2048, dtype=np.uint8)
    DataStructs.ConvertToNumpyArray(Chem.PatternFingerprint(mol, 2048), arr)
    return np.packbits(arr)


_ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})


def _passes_filters(mol) -> bool:
    """MOSES ``mol_passes_filters``: ring sizes, charges, allowed atoms, MCF + PAINS alerts.

    Alerts are matched on the molecule with explicit hydrogens, as MOSES does; RDKit's pattern
    fingerprints screen out alerts that cannot match (a substructure screen: never a false negative).
    """
    from rdkit import Chem

    ring_info = mol.GetRingInfo()
    if any(len(r) >= 8 for r in ring_info.AtomRings()):
        return False
    atoms = mol.GetAtoms()
    if any(a.GetFormalCharge() != 0 for a in atoms) or any(a.GetSymbol() not in _ALLOWED_ATOMS for a in atoms):
        return False
    queries, screens = _helper("filters")
    h_mol = Chem.AddHs(mol)
    mol_bits = _pattern_bits(h_mol)
    candidates = np.flatnonzero(~(screens & ~mol_bits).any(axis=1))
    if any(h_mol.HasSubstructMatch(queries[i]) for i in candidates):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(smiles) and Chem.MolFromSmiles(smiles) is not None


def _scaffold(mol) -> str | None:
    """MOSES ``compute_scaffold``: Bemis-Murcko scaffold SMILES, None below 2 rings."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    try:
        scaffold = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(scaffold)
    if smiles == "" or scaffold.GetRingInfo().NumRings() < 2:
        return None
    return smiles


def _safe(fn: Callable, mol) -> float:
    try:
        return float(fn(mol))
    except Exception:  # RDKit property code can fail on exotic valid molecules; NaN, not a crash
        return float("nan")


def _featurize_one(smiles: str | None, filters: bool) -> tuple | None:
    """Everything MOSES needs from one molecule, or None if it is invalid.

    (canonical, canonical without stereo, packed Morgan bits, (logP, SA, QED, MW), BRICS fragments,
    scaffold or None, passes filters or None). Like MOSES, features come from the molecule re-read
    from its canonical SMILES.
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from molvae.chem import PROPERTIES, parse_smiles

    if not isinstance(smiles, str) or not smiles:
        return None
    mol, _ = parse_smiles(smiles)
    if mol is None:
        return None
    canonical = Chem.MolToSmiles(mol)
    mol = Chem.MolFromSmiles(canonical) or mol
    fp = np.packbits(_helper("fp1024").GetFingerprintAsNumPy(mol).astype(bool)).tobytes()
    props = tuple(_safe(PROPERTIES[p], mol) for p in ("logp", "sa", "qed", "mw"))
    try:
        frags = tuple(Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(mol)).split("."))
    except Exception:
        frags = ()
    passes = _passes_filters(mol) if filters else None
    return (canonical, Chem.MolToSmiles(mol, isomericSmiles=False), fp, props, frags, _scaffold(mol), passes)


def _task_featurize(args: tuple) -> list:
    smiles, filters = args
    from molvae.chem import quiet_rdkit

    with quiet_rdkit():
        return [_featurize_one(s, filters) for s in smiles]


def _task_canonical(smiles: list) -> list:
    """(canonical, canonical without stereo) per SMILES, None where invalid (training sets)."""
    from rdkit import Chem

    from molvae.chem import parse_smiles, quiet_rdkit

    out = []
    with quiet_rdkit():
        for s in smiles:
            mol, _ = parse_smiles(s) if isinstance(s, str) and s else (None, None)
            out.append(None if mol is None else (Chem.MolToSmiles(mol), Chem.MolToSmiles(mol, isomericSmiles=False)))
    return out


def _task_guacamol(smiles: list) -> list:
    """GuacaMol descriptors and packed ECFP4 (4096) per SMILES without stereo, None where invalid."""
    from rdkit import Chem

    from molvae.chem import quiet_rdkit

    out = []
    with quiet_rdkit():
        for s in smiles:
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                out.append(None)
                continue
            desc = np.array([_safe(f, mol) for f in _helper("descriptors")], dtype=np.float64)
            desc[~np.isfinite(desc)] = 0.0  # as GuacaMol does
            fp = np.packbits(_helper("fp4096").GetFingerprintAsNumPy(mol).astype(bool))
            out.append((desc, fp))
    return out


@dataclass
class _Features:
    """Featurized molecules: per input its unique-canonical index (-1 invalid), and per unique molecule its data."""

    index: np.ndarray  # (n_inputs,) int64
    canonical: list[str]  # unique canonical SMILES, first-appearance order
    counts: np.ndarray  # (m,) int64 occurrences among valid inputs
    nostereo: list[str]
    fps: np.ndarray  # (m, FP_BITS/8) uint8 packed
    props: np.ndarray  # (m, 4) logP, SA, QED, MW
    frags: list[tuple]
    scaffolds: list[str | None]
    passes: np.ndarray | None  # (m,) bool

    @property
    def n_valid(self) -> int:
        return int(self.counts.sum())


def _featurize(smiles: list[str | None], runner: _Runner, filters: bool, progress: bool, desc: str) -> _Features:
    unique_inputs = list(dict.fromkeys(s for s in smiles if isinstance(s, str) and s))
    spans = _chunks(len(unique_inputs), runner.n_jobs, hi=1000)
    tasks = [(unique_inputs[a:b], filters) for a, b in spans]
    bar = progress_bar(len(unique_inputs), desc=desc, unit="mol", disable=not progress, leave=False)
    try:
        chunks = runner.map(_task_featurize, tasks, [b - a for a, b in spans],
                            parallel=len(unique_inputs) >= POOL_MIN, bar=bar)
    finally:
        bar.close()
    record = dict(zip(unique_inputs, (r for c in chunks for r in c)))
    canon_index: dict[str, int] = {}
    recs: list[tuple] = []
    index = np.full(len(smiles), -1, dtype=np.int64)
    counts: list[int] = []
    for i, s in enumerate(smiles):
        rec = record.get(s) if isinstance(s, str) else None
        if rec is None:
            continue
        j = canon_index.get(rec[0])
        if j is None:
            j = canon_index[rec[0]] = len(recs)
            recs.append(rec)
            counts.append(0)
        counts[j] += 1
        index[i] = j
    m = len(recs)
    return _Features(
        index=index,
        canonical=[r[0] for r in recs],
        counts=np.asarray(counts, dtype=np.int64),
        nostereo=[r[1] for r in recs],
        fps=np.frombuffer(b"".join(r[2] for r in recs), dtype=np.uint8).reshape(m, FP_BITS // 8).copy()
        if m else np.zeros((0, FP_BITS // 8), dtype=np.uint8),
        props=np.array([r[3] for r in recs], dtype=np.float64).reshape(m, 4),
        frags=[r[4] for r in recs],
        scaffolds=[r[5] for r in recs],
        passes=np.array([bool(r[6]) for r in recs], dtype=bool) if filters else None,
    )


def _counter(items: list, counts: np.ndarray, flatten: bool) -> dict[str, int]:
    c: Counter = Counter()
    for item, k in zip(items, counts.tolist()):
        if flatten:
            for f in item:
                c[f] += k
        elif item is not None:
            c[item] += k
    return dict(c)


def _guacamol_features(nostereo: list[str], n_jobs: int, device: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """GuacaMol descriptors (k, 9) and nearest-neighbour ECFP4 similarity within the set (k,)."""
    with _Runner(n_jobs) as runner:
        spans = _chunks(len(nostereo), n_jobs, hi=1000)
        parts = runner.map(_task_guacamol, [nostereo[a:b] for a, b in spans], parallel=len(nostereo) >= POOL_MIN)
    rows = [r for p in parts for r in p if r is not None]
    if not rows:
        return np.zeros((0, len(GUACAMOL_DESCRIPTORS))), np.zeros(0)
    desc = np.stack([r[0] for r in rows])
    fps = np.stack([r[1] for r in rows])
    with _Runner(n_jobs, {"g": fps}) as runner:
        (maxsim,) = _tanimoto(runner, "g", "g", "max_other", None, device, progress, "GuacaMol similarity")
    return desc, maxsim
