"""Distribution metrics for generated molecules: the MOSES set and the GuacaMol distribution-learning scores.

    >>> from molvae.metrics import evaluate, format_table
    >>> m = evaluate(smiles, ref="moses-test", ref_scaffolds="moses-test-scaffolds", train="moses-train")
    >>> print(format_table(m))

Definitions follow the reference implementations, so numbers can sit beside published tables:

* MOSES (``molsets`` 0.3.1 ``get_all_metrics``): ``validity`` over all inputs (None, empty and
  unparsable strings count as invalid); every other MOSES metric over the valid molecules, as
  canonical SMILES, duplicates included. ``unique@k`` on the first k valid; ``novelty`` is the share
  of unique valid molecules not in the training set; ``IntDiv``/``IntDiv2`` are
  ``1 - mean_i (mean_j T_ij^p)^(1/p)`` over Morgan (r=2, 1024 bits) Tanimoto, p = 1, 2; ``Filters``
  the share passing the MOSES structural alerts (its 22 MCF + 480 PAINS SMARTS, shipped in
  ``molvae/data/moses_filters.csv`` under molsets' MIT licence), allowed atoms C N S O F Cl Br H, no
  charge, no ring of 8 or more atoms. Against a reference set: FCD (ChemNet from ``fcd_torch``),
  SNN (mean nearest-neighbour Tanimoto), Frag / Scaf (cosine similarity of BRICS fragment and
  Bemis-Murcko scaffold counts; scaffolds with fewer than 2 rings are ignored, as in MOSES), and
  Wasserstein-1 distances of logP, SA, QED and molecular weight.
* GuacaMol (Brown et al. 2019): validity of the first 10,000 inputs; uniqueness (no stereo) of the
  first 10,000 valid; novelty of the first 10,000 unique against the training set; the KL score
  (9 physico-chemical descriptors and the nearest-neighbour similarity, ECFP4 4096 bits) and the
  FCD score ``exp(-0.2 FCD)``, both against a 10,000-molecule random subset (seed 42) of ``ref``.

Reference statistics (ChemNet mean/covariance, fingerprints, fragment and scaffold counts,
property values, the GuacaMol subset) are cached on disk under ``$MOLVAE_CACHE/metrics`` (default
``~/.cache/molvae/metrics``), keyed by the reference set's content and the RDKit version, so a second
evaluation against the same set does not recompute them. For the named sets ``moses-test`` and
``moses-test-scaffolds`` they ship with molvae (``molvae/reference/``, built by
``scripts/make_reference_stats.py``), and so does the novelty index of ``moses-train``: used, with
nothing downloaded, when they were built with the installed RDKit, for the names and for files with
the same bytes. RDKit work runs in ``n_jobs`` processes; ChemNet and the Tanimoto matrices run on the
GPU when there is one, else split over the processes (Tanimoto: sparse-dense products, see
:func:`_tanimoto_reduce`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from molvae.errors import DataError

__all__ = [
    "evaluate",
    "format_table",
    "moses_table_row",
    "reference_statistics",
    "ReferenceStats",
    "MOSES_COLUMNS",
    "METRIC_DESCRIPTIONS",
]

FP_RADIUS, FP_BITS = 2, 1024  # MOSES fingerprints (SNN, IntDiv)
GUACAMOL_N = 10_000  # GuacaMol sample size and reference subset size
GUACAMOL_SEED = 42
GUACAMOL_FP_BITS = 4096  # GuacaMol ECFP4 for the internal-similarity KL term
GUACAMOL_DESCRIPTORS = ("BertzCT", "MolLogP", "MolWt", "TPSA", "NumHAcceptors", "NumHDonors",
                        "NumRotatableBonds", "NumAliphaticRings", "NumAromaticRings")
MOSES_PROPERTIES = ("logP", "SA", "QED", "weight")
STATS_VERSION = 1  # bump when what the cache holds, or how it is computed, changes
POOL_MIN = 2000  # below this many molecules a worker pool costs more than it saves
ROW_TILE = 1024  # rows of one Tanimoto block (SNN: 4x): the block's intersections stay in the CPU cache
TANIMOTO_POOL_MIN = 3e8  # below this many pairs (about a second on one core) one process does the Tanimoto work

METRIC_DESCRIPTIONS = {
    "n_generated": "molecules given",
    "n_valid": "valid molecules",
    "n_unique": "unique valid molecules",
    "validity": "fraction valid (MOSES)",
    "unique@1000": "unique in the first 1,000 valid (all, if fewer)",
    "unique@10000": "unique in the first 10,000 valid (all, if fewer)",
    "novelty": "unique valid not in the training set",
    "IntDiv": "internal diversity, p=1",
    "IntDiv2": "internal diversity, p=2",
    "Filters": "passing the MOSES medchem filters",
    "FCD/Test": "Frechet ChemNet distance to ref (lower is better)",
    "SNN/Test": "mean nearest-neighbour Tanimoto to ref",
    "Frag/Test": "BRICS fragment cosine similarity to ref",
    "Scaf/Test": "Bemis-Murcko scaffold cosine similarity to ref",
    "FCD/TestSF": "FCD to the scaffold ref",
    "SNN/TestSF": "SNN to the scaffold ref",
    "Frag/TestSF": "Frag to the scaffold ref",
    "Scaf/TestSF": "Scaf to the scaffold ref",
    "logP": "Wasserstein-1 distance of logP to ref",
    "SA": "Wasserstein-1 distance of SA score to ref",
    "QED": "Wasserstein-1 distance of QED to ref",
    "weight": "Wasserstein-1 distance of mol. weight to ref",
    "guacamol_validity": "GuacaMol validity",
    "guacamol_uniqueness": "GuacaMol uniqueness",
    "guacamol_novelty": "GuacaMol novelty",
    "guacamol_kl_score": "GuacaMol KL-divergence score",
    "guacamol_fcd_score": "GuacaMol FCD score, exp(-0.2 FCD)",
    "n_ref": "reference molecules read",
    "n_ref_invalid": "reference molecules that did not parse (ignored)",
}
"""Every key :func:`evaluate` can return, in its order, with a one-line meaning."""

MOSES_COLUMNS = {
    "valid": "validity", "unique_1k": "unique@1000", "unique_10k": "unique@10000",
    "fcd_test": "FCD/Test", "fcd_testsf": "FCD/TestSF", "snn_test": "SNN/Test", "snn_testsf": "SNN/TestSF",
    "frag_test": "Frag/Test", "frag_testsf": "Frag/TestSF", "scaf_test": "Scaf/Test",
    "scaf_testsf": "Scaf/TestSF", "intdiv": "IntDiv", "intdiv2": "IntDiv2", "filters": "Filters",
    "novelty": "novelty",
}
"""Columns of the MOSES results table (as in its README) -> our metric keys."""


# ============================================================================================
# worker side: per-molecule RDKit work. Top-level functions so worker processes can import them.

_SHARED: dict[str, Any] = {}  # big read-only arrays handed to workers (fork: inherited; spawn: pickled once)
_CACHE: dict[str, Any] = {}  # per-process lazily built helpers (fingerprint generators, filters, ChemNet)


def _init_worker(shared: dict[str, Any]) -> None:
    """Pool initializer: one torch thread per process (processes are the parallelism), quiet RDKit."""
    global _SHARED
    _SHARED = shared
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


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

    path = Path(__file__).with_name("data") / "moses_filters.csv"
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


# ---------------------------------------------------------------- ChemNet (FCD) activations

_CHEMNET_VOCAB = ["C", "N", "O", "H", "F", "Cl", "P", "B", "Br", "S", "I", "Si", "#", "(", ")", "+", "-",
                  "1", "2", "3", "4", "5", "6", "7", "8", "=", "[", "]", "@", "c", "n", "o", "s", "X", "."]
_CHEMNET_INDEX = {s: i for i, s in enumerate(_CHEMNET_VOCAB)}
_CHEMNET_LEN = 350


def _chemnet_tokens(smiles: str) -> list[int]:
    """Token ids exactly as ``fcd_torch.utils.get_one_hot`` writes them (including its quirks:
    two-letter symbols when the next character is r/i/l, stop at the first '.', 350 positions)."""
    s = smiles + "."
    unk, stop = _CHEMNET_INDEX["X"], _CHEMNET_INDEX["."]
    out: list[int] = []
    src = 0
    while True:
        if s[src + 1] in "ril":
            sym, src = s[src:src + 2], src + 2
        else:
            sym, src = s[src], src + 1
        out.append(_CHEMNET_INDEX.get(sym, unk))
        if s[src] == "." or len(out) == _CHEMNET_LEN - 1:
            out.append(stop)
            return out


def _chemnet(device: str):
    key = f"chemnet:{device}"
    if key not in _CACHE:
        import fcd_torch
        import torch
        from fcd_torch.utils import load_imported_model

        path = Path(fcd_torch.__file__).with_name("ChemNet_v0.13_pretrained.pt")
        model = load_imported_model(torch.load(path, map_location="cpu", weights_only=True))
        _CACHE[key] = model.eval().to(device)
    return _CACHE[key]


def _chemnet_activations(smiles: Sequence[str], device: str = "cpu", batch_size: int = 256,
                         bar: Any = None) -> np.ndarray:
    """ChemNet penultimate activations (n, 512) float32 of canonical SMILES (fcd_torch's network)."""
    import torch

    model = _chemnet(device)
    out = np.zeros((len(smiles), 512), dtype=np.float32)
    value = np.float32(1.0 / len(_CHEMNET_VOCAB))  # fcd_torch scales the one-hot by 1/35
    with torch.inference_mode():
        for start in range(0, len(smiles), batch_size):
            batch = smiles[start:start + batch_size]
            tokens = [_chemnet_tokens(s) for s in batch]
            rows = torch.from_numpy(np.repeat(np.arange(len(batch)), [len(t) for t in tokens]))
            cols = torch.from_numpy(np.concatenate([np.arange(len(t)) for t in tokens]))
            ids = torch.from_numpy(np.concatenate([np.asarray(t, dtype=np.int64) for t in tokens]))
            x = torch.zeros(len(batch), len(_CHEMNET_VOCAB), _CHEMNET_LEN)
            x[rows, ids, cols] = float(value)
            out[start:start + len(batch)] = model(x.to(device)).float().cpu().numpy()
            if bar is not None:
                bar.update(len(batch))
    return out


def _task_chemnet(smiles: list) -> np.ndarray:
    return _chemnet_activations(smiles, "cpu")


# ---------------------------------------------------------------- Tanimoto matrices

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


def _popcounts(packed: np.ndarray) -> np.ndarray:
    """Bits set per row of packed fingerprints (int32)."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(packed).sum(axis=1, dtype=np.int32)
    return _POPCOUNT[packed].sum(axis=1, dtype=np.int32)


def _tanimoto_reduce(a: np.ndarray, b: np.ndarray, mode: str, weights: np.ndarray | None = None,
                     row_offset: int = 0, device: str = "cpu", col_block: int = 512) -> tuple:
    """Reduce the Tanimoto matrix between packed fingerprints ``a`` (r, bytes) and ``b`` (s, bytes).

    ``max``: per row of ``a`` the largest similarity to ``b`` (SNN). ``sums``: per row
    ``sum_j w_j T_ij`` and ``sum_j w_j T_ij^2`` (IntDiv). ``max_other``: like ``max`` but leaving out
    the pair (i, i + row_offset) (GuacaMol nearest-neighbour similarity within one set).
    Intersections are exact integers; the division is float32, like MOSES. Two empty fingerprints
    count as similarity 1, as in MOSES. On the CPU the intersections are sparse-dense products (each
    row of ``a`` sums the ~40 bit-rows of a bit-major block of ``b`` it has set: ``embedding_bag``,
    exact in fp16 up to 2048), and ``max`` needs no division per pair: within columns of equal
    popcount ``T`` grows with the intersection, so the largest intersection of each popcount group
    gives the row's best similarity in that group.
    """
    if device != "cpu":
        return _tanimoto_dense(a, b, mode, weights, row_offset, device, col_block=max(col_block, 8192))
    import torch

    pa_np, pb_all = _popcounts(a), _popcounts(b)
    order = np.argsort(pb_all, kind="stable")  # popcount groups are contiguous columns
    bs, pb_np = b[order], pb_all[order]
    dtype = torch.float16 if int(pa_np.max(initial=0)) <= 2048 else torch.float32  # exact integer sums
    tile = ROW_TILE if mode == "sums" else 4 * ROW_TILE  # max: fewer, larger fp16 blocks
    tiles = [(i, min(len(a), i + tile)) for i in range(0, len(a), tile)]
    bags = [_bags(a[i:j], pa_np[i:j]) for i, j in tiles]
    pa = torch.from_numpy(pa_np)
    if mode == "sums":
        w = torch.from_numpy(np.asarray(weights, dtype=np.float64)[order])
        acc = torch.zeros((2, len(a)), dtype=torch.float64)
        zero_union = bool((pa_np == 0).any() and (pb_np == 0).any())
    else:
        acc = torch.zeros(len(a), dtype=torch.float32)
    with _torch_threads(1):
        for start in range(0, len(bs), col_block):
            stop = min(len(bs), start + col_block)
            weight = _bit_major(bs[start:stop], dtype)
            for (i, j), (inputs, offsets) in zip(tiles, bags):
                inter = torch.nn.functional.embedding_bag(inputs, weight, offsets, mode="sum")
                if mode == "sums":
                    acc[:, i:j] += _sim_sums(inter, pa[i:j], pb_np[start:stop], w[start:stop], zero_union)
                    continue
                if mode == "max_other":
                    _exclude_self(inter, order[start:stop] - row_offset - i, j - i)
                acc[i:j] = torch.maximum(acc[i:j], _group_best(inter, pa[i:j], pb_np[start:stop]))
    if mode == "sums":
        return acc[0].numpy(), acc[1].numpy()
    return (acc.numpy().astype(np.float64),)


def _sim_sums(inter, pa, pb: np.ndarray, w, zero_union: bool):
    """(2, rows): ``sum_j w_j T_ij`` and ``sum_j w_j T_ij^2`` of one block, T in float32 as MOSES has it."""
    import torch

    sim = inter.float()
    union = (pa[:, None].float() + torch.from_numpy(pb)[None, :].float()).sub_(sim)  # exact: integers < 2**24
    empty = union == 0 if zero_union else None
    sim.div_(union.clamp_(min=1))
    if empty is not None:
        sim.masked_fill_(empty, 1.0)
    simd = sim.double()
    s1 = simd @ w
    return torch.stack([s1, simd.mul_(simd) @ w])


def _bags(a: np.ndarray, pa: np.ndarray) -> tuple:
    """The set bits of each row of packed ``a`` as ``embedding_bag`` inputs and offsets."""
    import torch

    _, bits = np.nonzero(np.unpackbits(a, axis=1))
    offsets = np.zeros(len(a), dtype=np.int64)
    np.cumsum(pa[:-1], out=offsets[1:])
    return torch.from_numpy(bits.astype(np.int64)), torch.from_numpy(offsets)


def _bit_major(b_block: np.ndarray, dtype):
    """A block of packed fingerprints as an ``embedding_bag`` weight: row k lists which columns have bit k."""
    import torch

    unpacked = torch.from_numpy(np.unpackbits(b_block, axis=1))
    weight = torch.empty((unpacked.shape[1], unpacked.shape[0]), dtype=dtype)
    return weight.copy_(unpacked.T)


def _exclude_self(inter, rows: np.ndarray, r: int) -> None:
    """Set the intersection of each column with its own row to -1 (never a best match)."""
    import torch

    cols = np.flatnonzero((rows >= 0) & (rows < r))
    if len(cols):
        inter[torch.from_numpy(rows[cols]), torch.from_numpy(cols)] = -1


def _group_best(inter, pa, pb: np.ndarray):
    """Per row the best float32 Tanimoto over columns sorted by popcount ``pb``."""
    import torch

    best = torch.zeros(inter.shape[0], dtype=torch.float32)
    cuts = np.flatnonzero(np.diff(pb)) + 1
    for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(pb)].tolist()):
        c = inter[:, lo:hi].amax(dim=1).to(torch.int32)
        union = pa + int(pb[lo]) - c
        sim = c.float() / union.clamp(min=1).float()
        sim = torch.where(union == 0, torch.ones_like(sim), sim)
        best = torch.maximum(best, sim)
    return best


def _tanimoto_dense(a: np.ndarray, b: np.ndarray, mode: str, weights: np.ndarray | None, row_offset: int,
                    device: str, col_block: int) -> tuple:
    """:func:`_tanimoto_reduce` on a GPU: dense float32 products of unpacked bits, column block by block."""
    import torch

    dev = torch.device(device)
    A = torch.from_numpy(np.unpackbits(a, axis=1))
    pa = A.sum(1, dtype=torch.int32).to(dev)
    A = A.to(dev, torch.float32)
    r = A.shape[0]
    if mode == "sums":
        s1 = torch.zeros(r, dtype=torch.float64, device=dev)
        s2 = torch.zeros(r, dtype=torch.float64, device=dev)
    else:
        best = torch.zeros(r, dtype=torch.float32, device=dev)
    for start in range(0, b.shape[0], col_block):
        B = torch.from_numpy(np.unpackbits(b[start:start + col_block], axis=1))
        pb = B.sum(1, dtype=torch.int32).to(dev)
        B = B.to(dev, torch.float32)
        inter = (A @ B.T).to(torch.int32)
        union = (pa[:, None] + pb[None, :]) - inter
        sim = inter.float() / union.clamp(min=1).float()
        if bool((union == 0).any()):
            sim = torch.where(union == 0, torch.ones_like(sim), sim)
        if mode == "max_other":
            i = torch.arange(r, device=dev)
            j = i + row_offset - start
            keep = (j >= 0) & (j < sim.shape[1])
            sim[i[keep], j[keep]] = 0.0
        if mode == "sums":
            w = torch.from_numpy(weights[start:start + col_block]).to(dev, torch.float64)
            simd = sim.double()
            s1 += simd @ w
            s2 += (simd * simd) @ w
        else:
            best = torch.maximum(best, sim.max(dim=1).values)
    if mode == "sums":
        return s1.cpu().numpy(), s2.cpu().numpy()
    return (best.cpu().numpy().astype(np.float64),)


def _task_tanimoto(args: tuple) -> tuple:
    """One column span of ``b``, all rows of ``a`` (``a`` and ``b`` are the same set for max_other)."""
    a_key, cols, b_key, mode, w_key = args
    b = _SHARED[b_key][cols[0]:cols[1]]
    w = _SHARED[w_key][cols[0]:cols[1]] if w_key else None
    return _tanimoto_reduce(_SHARED[a_key], b, mode, w, row_offset=-cols[0])


# ============================================================================================
# parent side: pools, devices, caching


def _n_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    return max(1, int(n_jobs))


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from molvae.errors import ConfigError

        raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available")
    return device


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="mol", disable=not progress, leave=False)


class _Runner:
    """Runs worker tasks in order, in-process for small jobs or over ``n_jobs`` processes.

    fork on Linux (fast, and works from unguarded scripts and notebooks); spawn elsewhere. Each
    worker runs torch on one thread: the processes are the parallelism.
    """

    def __init__(self, n_jobs: int, shared: dict[str, Any] | None = None):
        self.n_jobs = n_jobs
        self.shared = shared or {}
        self._pool = None

    def __enter__(self) -> "_Runner":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable, tasks: list, sizes: list[int] | None = None, parallel: bool = True,
            bar: Any = None) -> list:
        results = []
        if not parallel or self.n_jobs == 1 or len(tasks) <= 1:
            global _SHARED
            saved, _SHARED = _SHARED, self.shared
            try:
                for k, t in enumerate(tasks):
                    results.append(fn(t))
                    if bar is not None and sizes is not None:
                        bar.update(sizes[k])
            finally:
                _SHARED = saved
            return results
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.n_jobs, mp_context=ctx,
                                             initializer=_init_worker, initargs=(self.shared,))
        for k, res in enumerate(self._pool.map(fn, tasks)):
            results.append(res)
            if bar is not None and sizes is not None:
                bar.update(sizes[k])
        return results


def _chunks(n: int, n_jobs: int, lo: int = 64, hi: int = 2000) -> list[tuple[int, int]]:
    size = max(lo, min(hi, -(-n // max(1, n_jobs * 8))))
    return [(i, min(n, i + size)) for i in range(0, n, size)]


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("MOLVAE_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "molvae") / "metrics"


def _content_key(smiles: Sequence[str | None], kind: str) -> str:
    import hashlib

    import rdkit

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{kind}|v{STATS_VERSION}|rdkit {rdkit.__version__}|{len(smiles)}\n".encode())
    for s in smiles:
        h.update(("" if s is None else s).encode())
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------- inputs

def _read_list(source: Any, what: str) -> list[str | None]:
    """SMILES of a path, named dataset or in-memory sequence (None kept as None)."""
    from molvae.data import read_smiles

    if isinstance(source, (list, tuple)) and not source:
        raise DataError(f"{what}: no molecules given")
    if isinstance(source, np.ndarray):
        source = source.tolist()
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        from molvae.data import DATASETS

        if str(source) not in DATASETS:
            raise DataError(f"{what}: {source}: no such file or named dataset "
                            f"(named sets: {', '.join(DATASETS)})")
    df = read_smiles(source)
    return [s if isinstance(s, str) else None for s in df["input"].tolist()]


def _read_generated(source: Any) -> list[str | None]:
    """Generated SMILES; in a .smi/.txt file every line is one molecule and a blank line is an
    invalid one (``molvae sample`` writes failed decodes as blank lines)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        path = Path(source)
        suffixes = [x.lower() for x in path.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes = suffixes[:-1]
        if suffixes and suffixes[-1] in (".smi", ".smiles", ".txt"):
            import gzip

            opener = gzip.open if path.suffix.lower() == ".gz" else open
            try:
                with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
                    lines = fh.read().splitlines()
            except (OSError, EOFError) as exc:
                raise DataError(f"{path}: cannot read file: {exc}") from None
            if lines and lines[0].split()[:1] and lines[0].split()[0].lower() in ("smiles", "canonical_smiles"):
                lines = lines[1:]
            if not any(line.strip() for line in lines):
                raise DataError(f"{path}: file is empty (no molecules to evaluate)")
            return [line.split()[0] if line.strip() else None for line in lines]
    return _read_list(source, "generated molecules")


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
    bar = _bar(len(unique_inputs), desc, progress)
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


def _activations(smiles: list[str], runner: _Runner, device: str, progress: bool, desc: str) -> np.ndarray:
    """ChemNet activations: batched on the GPU, or split over the worker processes on the CPU."""
    if not smiles:
        return np.zeros((0, 512), dtype=np.float32)
    bar = _bar(len(smiles), desc, progress)
    try:
        if device != "cpu":
            return _chemnet_activations(smiles, device, batch_size=1024, bar=bar)
        spans = _chunks(len(smiles), runner.n_jobs, lo=256, hi=2048)
        parts = runner.map(_task_chemnet, [smiles[a:b] for a, b in spans], [b - a for a, b in spans],
                           parallel=len(smiles) >= POOL_MIN, bar=bar)
        return np.concatenate(parts)
    finally:
        bar.close()


def _tanimoto(runner: _Runner, a_key: str, b_key: str, mode: str, w_key: str | None, device: str,
              progress: bool, desc: str) -> tuple:
    """Tanimoto reductions of shared packed fingerprints (see :func:`_tanimoto_reduce`).

    On the CPU the columns (``b``) are split over the processes, every process taking all rows,
    so each fingerprint of ``b`` is unpacked once; the partial maxima or sums are then combined.
    """
    a, b = runner.shared[a_key], runner.shared[b_key]
    w = runner.shared[w_key] if w_key else None
    if device != "cpu":  # one process drives the GPU; row blocks bound its memory (~1 GB per temporary)
        parts = [_tanimoto_reduce(a[i:i + 8192], b, mode, w, row_offset=i, device=device, col_block=32768)
                 for i in range(0, len(a), 8192)]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(parts[0])))
    parallel = len(a) * len(b) >= TANIMOTO_POOL_MIN and runner.n_jobs > 1
    n_spans = 2 * runner.n_jobs if parallel else 1
    size = max(1, -(-len(b) // n_spans))
    spans = [(i, min(len(b), i + size)) for i in range(0, max(1, len(b)), size)]
    bar = _bar(len(b), desc, progress)
    try:
        parts = runner.map(_task_tanimoto, [(a_key, span, b_key, mode, w_key) for span in spans],
                           [y - x for x, y in spans], parallel=parallel, bar=bar)
    finally:
        bar.close()
    if mode == "sums":
        return tuple(np.sum([p[k] for p in parts], axis=0) for k in range(2))
    return (np.max([p[0] for p in parts], axis=0),)


def _mean_cov(acts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of rows repeated ``weights`` times (``np.cov`` with ``fweights``), in float64."""
    import torch

    with _torch_threads(1):
        x = torch.from_numpy(acts).double()
        w = torch.from_numpy(weights.astype(np.float64))
        n = float(w.sum())
        mu = (w @ x) / n
        xc = x - mu
        cov = (xc.T * w) @ xc / max(n - 1.0, 1.0)
    return mu.numpy(), cov.numpy()


def _frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Frechet distance between Gaussians: |mu1-mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2).

    The trace of the matrix square root is taken from the eigenvalues of S1^1/2 S2 S1^1/2 (same
    value as fcd_torch's ``sqrtm``, stable for singular covariances, and much faster).
    """
    import torch

    with _torch_threads(1):
        a = torch.from_numpy(np.asarray(s1, dtype=np.float64))
        b = torch.from_numpy(np.asarray(s2, dtype=np.float64))
        w, v = torch.linalg.eigh(a)
        root = (v * w.clamp(min=0).sqrt()) @ v.T
        m = root @ b @ root
        tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
        diff = torch.from_numpy(np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64))
        return float(diff @ diff + a.trace() + b.trace() - 2 * tr_covmean)


def _cosine(ref: dict[str, int], gen: dict[str, int]) -> float | None:
    """MOSES ``cos_similarity`` of two count dictionaries, in float64 (no integer overflow)."""
    if not ref or not gen:
        return None
    keys = list(ref.keys() | gen.keys())
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))


def _counter(items: list, counts: np.ndarray, flatten: bool) -> dict[str, int]:
    c: Counter = Counter()
    for item, k in zip(items, counts.tolist()):
        if flatten:
            for f in item:
                c[f] += k
        elif item is not None:
            c[item] += k
    return dict(c)


# ---------------------------------------------------------------- reference statistics

@dataclass
class ReferenceStats:
    """What the metrics need from a reference set, computed once and cached on disk.

    ``fps``: packed Morgan fingerprints of the unique valid molecules; ``props`` (n_valid, 4) logP,
    SA, QED, MW with duplicates; ``frag``/``scaf`` counts; ChemNet ``fcd_mu``/``fcd_sigma``; the
    GuacaMol subset's descriptors, nearest-neighbour similarities and ChemNet statistics.
    """

    key: str
    n_input: int
    n_invalid: int
    fps: np.ndarray
    props: np.ndarray
    frag: dict[str, int]
    scaf: dict[str, int]
    fcd_mu: np.ndarray
    fcd_sigma: np.ndarray
    g_desc: np.ndarray
    g_maxsim: np.ndarray
    g_fcd_mu: np.ndarray
    g_fcd_sigma: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    _ARRAYS = ("fps", "props", "fcd_mu", "fcd_sigma", "g_desc", "g_maxsim", "g_fcd_mu", "g_fcd_sigma")

    def save(self, directory: Path) -> Path:
        from molvae.io import atomic_write

        directory.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        atomic_write(directory / f"ref-{self.key}.npz", lambda tmp: _savez(tmp, arrays))
        meta = {"version": STATS_VERSION, "key": self.key, "n_input": self.n_input, "n_invalid": self.n_invalid,
                "frag": self.frag, "scaf": self.scaf}
        return atomic_write(directory / f"ref-{self.key}.json",
                            lambda tmp: Path(tmp).write_text(json.dumps(meta), encoding="utf-8"))

    @classmethod
    def load(cls, directory: Path, key: str) -> "ReferenceStats | None":
        npz, meta_path = directory / f"ref-{key}.npz", directory / f"ref-{key}.json"
        if not (npz.exists() and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with np.load(npz, allow_pickle=False) as data:
                arrays = {k: data[k] for k in cls._ARRAYS}
        except (OSError, ValueError, KeyError):
            return None  # a broken cache entry is recomputed, not trusted
        if meta.get("version") != STATS_VERSION:
            return None
        return cls(key=key, n_input=meta["n_input"], n_invalid=meta["n_invalid"], frag=meta["frag"],
                   scaf=meta["scaf"], **arrays)


def _savez(path: str, arrays: dict[str, np.ndarray], compressed: bool = False) -> None:
    with open(path, "wb") as fh:  # a file object: NumPy would add ".npz" to a path
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)


def _guacamol_subset(n: int) -> np.ndarray:
    """Indices of GuacaMol's ``get_random_subset(data, 10000, seed=42)``; all rows if fewer."""
    if n <= GUACAMOL_N:
        return np.arange(n)
    return np.random.RandomState(GUACAMOL_SEED).choice(n, GUACAMOL_N, replace=False)


def _compute_reference_stats(smiles: list[str | None], key: str, n_jobs: int, device: str,
                             progress: bool) -> ReferenceStats:
    """Featurize a reference set and summarise it (the expensive part the cache saves)."""
    with _Runner(n_jobs) as runner:
        feats = _featurize(smiles, runner, filters=False, progress=progress, desc="reference molecules")
    if not feats.canonical:
        raise DataError("reference set: no valid molecule")
    with _Runner(n_jobs) as runner:
        acts = _activations(feats.canonical, runner, device, progress, "reference ChemNet")
    fcd_mu, fcd_sigma = _mean_cov(acts, feats.counts)
    # GuacaMol: a random subset of the raw list, canonicalized without stereo, duplicates removed
    sub = [i for i in _guacamol_subset(len(smiles)).tolist() if feats.index[i] >= 0]
    g_idx = feats.index[sub]
    g_counts = np.bincount(g_idx, minlength=len(feats.canonical))
    g_fcd_mu, g_fcd_sigma = _mean_cov(acts[g_counts > 0], g_counts[g_counts > 0])
    nostereo = list(dict.fromkeys(feats.nostereo[j] for j in g_idx.tolist()))
    g_desc, g_maxsim = _guacamol_features(nostereo, n_jobs, device, progress)
    return ReferenceStats(
        key=key, n_input=len(smiles), n_invalid=int((feats.index < 0).sum()), fps=feats.fps,
        props=np.repeat(feats.props, feats.counts, axis=0),
        frag=_counter(feats.frags, feats.counts, flatten=True),
        scaf=_counter(feats.scaffolds, feats.counts, flatten=False),
        fcd_mu=fcd_mu, fcd_sigma=fcd_sigma, g_desc=g_desc, g_maxsim=g_maxsim,
        g_fcd_mu=g_fcd_mu, g_fcd_sigma=g_fcd_sigma,
    )


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


def reference_statistics(ref: Any, n_jobs: int | None = None, device: str = "auto",
                         cache_dir: str | Path | None = None, progress: bool = True) -> ReferenceStats:
    """Statistics of a reference set (list, file or named set), from the disk cache when present.

    The cache key hashes the file's bytes (or, for an in-memory list, its SMILES in order), the
    statistics format and the RDKit version; entries live in ``cache_dir`` (default
    ``$MOLVAE_CACHE/metrics``). Statistics shipped with molvae for that key come first.
    """
    return _reference_stats(ref, "reference set", _n_jobs(n_jobs), _resolve_device(device), cache_dir, progress)


def _source(source: Any, what: str, kind: str) -> tuple[str, str | Path | list[str | None]]:
    """(cache key, file path, named set or SMILES list) of a reference or training set, without parsing files.

    A named set whose statistics ship with molvae keeps its name (nothing is downloaded).
    """
    import hashlib

    import rdkit

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            from molvae.data import DATASETS, named_dataset

            if str(source) not in DATASETS:
                raise DataError(f"{what}: {source}: no such file or named dataset (named sets: {', '.join(DATASETS)})")
            shipped = _shipped(str(source), kind)
            if shipped is not None:  # statistics ship with molvae: no download unless they fail to load
                return shipped[0], str(source)
            path = named_dataset(str(source))
        if path.is_file():
            h = hashlib.blake2b(digest_size=16)
            h.update(f"{kind}|v{STATS_VERSION}|rdkit {rdkit.__version__}|file\n".encode())
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest(), path
    smiles = _read_list(source, what)
    return _content_key(smiles, kind), smiles


def _reference_stats(ref: Any, what: str, n_jobs: int, device: str, cache_dir: str | Path | None,
                     progress: bool) -> ReferenceStats:
    key, src = _source(ref, what, "ref")
    root = _cache_root(cache_dir)
    stats = _load_shipped_reference(key) or ReferenceStats.load(root, key)
    if stats is None:
        smiles = src if isinstance(src, list) else _read_list(src, what)
        stats = _compute_reference_stats(smiles, key, n_jobs, device, progress)
        try:
            stats.save(root)
        except OSError as exc:  # a read-only cache is slower, not fatal
            warnings.warn(f"could not cache reference statistics in {root}: {exc}", stacklevel=3)
    return stats


def _train_hashes(train: Any, n_jobs: int, cache_dir: str | Path | None,
                  progress: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted 64-bit hashes of the training set's canonical SMILES (with, and without, stereo).

    ``train`` may also be an array of hashes already (a model's ``train_hashes``): then only the
    MOSES novelty is computed.
    """
    from molvae.io import smiles_hashes

    if isinstance(train, np.ndarray) and train.dtype == np.uint64:
        return np.sort(train), None
    key, src = _source(train, "training set", "train")
    shipped = _load_shipped_train(key)
    if shipped is not None:
        return shipped
    root = _cache_root(cache_dir)
    path = root / f"train-{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                return data["stereo"], data["nostereo"]
        except (OSError, ValueError, KeyError):
            pass
    smiles = src if isinstance(src, list) else _read_list(src, "training set")
    spans = _chunks(len(smiles), n_jobs, hi=5000)
    bar = _bar(len(smiles), "training set", progress)
    try:
        with _Runner(n_jobs) as runner:
            parts = runner.map(_task_canonical, [smiles[a:b] for a, b in spans], [b - a for a, b in spans],
                               parallel=len(smiles) >= POOL_MIN, bar=bar)
    finally:
        bar.close()
    pairs = [p for part in parts for p in part if p is not None]
    stereo = np.unique(smiles_hashes(p[0] for p in pairs))
    nostereo = np.unique(smiles_hashes(p[1] for p in pairs))
    try:
        from molvae.io import atomic_write

        root.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: _savez(tmp, {"stereo": stereo, "nostereo": nostereo}))
    except OSError as exc:
        warnings.warn(f"could not cache training-set hashes in {root}: {exc}", stacklevel=3)
    return stereo, nostereo


# ---------------------------------------------------------------- statistics shipped for the named sets

REFERENCE_DIR = Path(__file__).with_name("reference")
SHIPPED_FORMAT = 1  # layout of molvae/reference/ (index.json + one .npz per named set)


def _shipped_index(directory: Path | None = None) -> dict[str, dict]:
    """The entries of ``index.json`` in the shipped statistics folder ({} when absent or unreadable)."""
    path = (directory or REFERENCE_DIR) / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return index.get("sets", {}) if isinstance(index, dict) and index.get("format") == SHIPPED_FORMAT else {}


def _shipped(name_or_key: str, kind: str) -> tuple[str, Path] | None:
    """(content key, file) of the statistics shipped for a named set or a content key, or None.

    Only entries built with this RDKit and this ``STATS_VERSION`` count (a content key contains
    both already); another RDKit recomputes, as the cache would.
    """
    import rdkit

    for name, entry in _shipped_index().items():
        if entry.get("kind") != kind or name_or_key not in (name, entry.get("key")):
            continue
        if entry.get("rdkit") == rdkit.__version__ and entry.get("stats_version") == STATS_VERSION:
            path = REFERENCE_DIR / str(entry.get("file"))
            if path.is_file():
                return str(entry["key"]), path
    return None


def _read_shipped(key: str, kind: str) -> dict[str, np.ndarray] | None:
    """The arrays of the shipped file for ``key``, or None if none ships or it is not that key's."""
    found = _shipped(key, kind)
    if found is None:
        return None
    try:
        with np.load(found[1], allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError):
        meta = {}
    if meta.get("key") != key or meta.get("version") != STATS_VERSION:
        warnings.warn(f"{found[1]}: stale shipped statistics (not those of this set, RDKit and molvae); "
                      "recomputing", stacklevel=4)
        return None
    arrays["meta"] = meta
    return arrays


def _load_shipped_reference(key: str) -> ReferenceStats | None:
    """Shipped reference statistics with this content key, or None."""
    arrays = _read_shipped(key, "ref")
    if arrays is None:
        return None
    meta = arrays.pop("meta")
    counts = {}
    for name in ("frag", "scaf"):
        keys = arrays.pop(f"{name}_keys").tobytes().decode("utf-8").split("\n")
        counts[name] = dict(zip(keys, arrays.pop(f"{name}_counts").tolist())) if keys != [""] else {}
    return ReferenceStats(key=key, n_input=meta["n_input"], n_invalid=meta["n_invalid"], **counts,
                          **{k: arrays[k] for k in ReferenceStats._ARRAYS})


def _load_shipped_train(key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Shipped training-set hashes (with, without stereo) with this content key, or None."""
    arrays = _read_shipped(key, "train")
    if arrays is None:
        return None
    stereo = _unpack_hashes(arrays["stereo_buckets"], arrays["stereo_low"])
    nostereo = stereo[arrays["nostereo_in_stereo"].view(bool)]
    if len(arrays["nostereo_extra"]):
        nostereo = np.union1d(nostereo, arrays["nostereo_extra"])
    return stereo, nostereo


def _pack_hashes(sorted_hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted uint64 -> (counts per top-16-bit bucket, low 48 bits as 6 little-endian bytes): 6 bytes a hash."""
    buckets = np.bincount((sorted_hashes >> np.uint64(48)).astype(np.int64), minlength=1 << 16).astype(np.uint32)
    low = sorted_hashes.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :6]
    return buckets, np.ascontiguousarray(low)


def _unpack_hashes(buckets: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_pack_hashes`."""
    full = np.zeros((len(low), 8), dtype=np.uint8)
    full[:, :6] = low
    out = full.view("<u8").reshape(-1).astype(np.uint64)
    out |= np.repeat(np.arange(1 << 16, dtype=np.uint64) << np.uint64(48), buckets.astype(np.int64))
    return out


def _ship(directory: Path, name: str, kind: str, key: str, sha256: str, arrays: dict[str, np.ndarray],
          meta: dict[str, Any]) -> Path:
    """Write one shipped statistics file (compressed .npz, no pickle) and its ``index.json`` entry."""
    import rdkit

    from molvae.io import atomic_write

    meta = {"key": key, "version": STATS_VERSION, "rdkit": rdkit.__version__, **meta}
    arrays = {**arrays, "meta": np.array(json.dumps(meta))}
    path = atomic_write(directory / f"{name}.npz", lambda tmp: _savez(tmp, arrays, compressed=True))
    os.chmod(path, 0o644)
    sets = _shipped_index(directory)
    sets[name] = {"kind": kind, "file": path.name, "key": key, "rdkit": rdkit.__version__,
                  "stats_version": STATS_VERSION, "source_sha256": sha256, "bytes": path.stat().st_size}
    index = {"format": SHIPPED_FORMAT, "sets": dict(sorted(sets.items()))}
    written = atomic_write(directory / "index.json",
                           lambda tmp: Path(tmp).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8"))
    os.chmod(written, 0o644)
    return path


def _ship_reference(directory: Path, name: str, sha256: str, stats: ReferenceStats) -> Path:
    """Ship reference statistics (``scripts/make_reference_stats.py``)."""
    arrays = {k: getattr(stats, k) for k in ReferenceStats._ARRAYS}
    for what in ("frag", "scaf"):
        counts = getattr(stats, what)
        arrays[f"{what}_keys"] = np.frombuffer("\n".join(counts).encode("utf-8"), dtype=np.uint8)
        arrays[f"{what}_counts"] = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    return _ship(directory, name, "ref", stats.key, sha256, arrays,
                 {"n_input": stats.n_input, "n_invalid": stats.n_invalid})


def _ship_train(directory: Path, name: str, key: str, sha256: str, stereo: np.ndarray,
                nostereo: np.ndarray) -> Path:
    """Ship a training set's novelty index: the stereo hashes packed, the stereo-free ones as a subset mask
    of them plus the few that are not among them."""
    buckets, low = _pack_hashes(stereo)
    in_stereo = np.isin(stereo, nostereo)
    arrays = {"stereo_buckets": buckets, "stereo_low": low, "nostereo_in_stereo": in_stereo.view(np.uint8),
              "nostereo_extra": np.setdiff1d(nostereo, stereo)}
    return _ship(directory, name, "train", key, sha256, arrays, {"n_stereo": len(stereo), "n_nostereo": len(nostereo)})


# ============================================================================================
# the metrics


def _wasserstein(u: np.ndarray, v: np.ndarray) -> float | None:
    from scipy.stats import wasserstein_distance

    u, v = u[np.isfinite(u)], v[np.isfinite(v)]
    if not len(u) or not len(v):
        return None
    return float(wasserstein_distance(u, v))


def _continuous_kldiv(p_values: np.ndarray, q_values: np.ndarray) -> float:
    """GuacaMol ``continuous_kldiv``: KL of Gaussian KDEs on 1000 points spanning both sets."""
    from scipy.stats import entropy, gaussian_kde

    try:
        kde_p, kde_q = gaussian_kde(p_values), gaussian_kde(q_values)
    except (np.linalg.LinAlgError, ValueError):  # fewer than 2 distinct values: GuacaMol would crash
        return float("inf")
    both = np.hstack([p_values, q_values])
    x = np.linspace(both.min(), both.max(), num=1000)
    return float(entropy(kde_p(x) + 1e-10, kde_q(x) + 1e-10))


def _discrete_kldiv(p_values: np.ndarray, q_values: np.ndarray) -> float:
    """GuacaMol ``discrete_kldiv``: KL of 10-bin histograms on the baseline's bins."""
    from scipy.stats import entropy

    with np.errstate(invalid="ignore", divide="ignore"):
        p, bins = np.histogram(p_values, bins=10, density=True)
        q, _ = np.histogram(q_values, bins=bins, density=True)
    q = np.nan_to_num(q)  # no sampled value inside the baseline's bins: no overlap at all (GuacaMol: NaN)
    return float(entropy(np.nan_to_num(p) + 1e-10, q + 1e-10))


def _kl_score(ref_desc: np.ndarray, ref_sim: np.ndarray, desc: np.ndarray, sim: np.ndarray) -> float | None:
    if len(ref_desc) < 2 or len(desc) < 2:
        return None
    kls = [_continuous_kldiv(ref_desc[:, i], desc[:, i]) for i in range(4)]
    kls += [_discrete_kldiv(ref_desc[:, i], desc[:, i]) for i in range(4, 9)]
    kls.append(_continuous_kldiv(ref_sim, sim))
    return float(np.mean([math.exp(-k) for k in kls]))


def evaluate(
    generated: Any,
    ref: Any = None,
    train: Any = None,
    ref_scaffolds: Any = None,
    n_jobs: int | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, float | int | None]:
    """Score generated molecules with the MOSES and GuacaMol distribution metrics.

    ``generated``: SMILES as a list (``None``/empty/invalid entries count as invalid), a file, or a
    DataFrame with a SMILES column. ``ref``/``ref_scaffolds``/``train``: a list, a file, or a named
    set (``moses-test``, ``moses-test-scaffolds``, ``moses-train``); ``train`` may also be a model's
    ``train_hashes`` array. Without ``ref`` only the intrinsic metrics are computed; without
    ``train`` no novelty. Returns a flat dict in :data:`METRIC_DESCRIPTIONS` order; a metric that
    cannot be computed (e.g. no valid molecule) is ``None``.

    :raises DataError: no molecules given, an empty or unreadable file, a reference with no valid molecule.
    """
    gen = _read_generated(generated)
    n_jobs = _n_jobs(n_jobs)
    device = _resolve_device(device)

    with _Runner(n_jobs) as runner:
        feats = _featurize(gen, runner, filters=True, progress=progress, desc="generated molecules")
    ref_stats = _reference_stats(ref, "reference set", n_jobs, device, cache_dir, progress) \
        if ref is not None else None
    sf_stats = _reference_stats(ref_scaffolds, "scaffold reference set", n_jobs, device, cache_dir, progress) \
        if ref_scaffolds is not None else None
    train_sets = _train_hashes(train, n_jobs, cache_dir, progress) if train is not None else None

    n, counts = len(gen), feats.counts
    n_valid = feats.n_valid
    valid_idx = feats.index[feats.index >= 0]  # unique index of each valid input, in order
    out: dict[str, float | int | None] = {"n_generated": n, "n_valid": n_valid, "n_unique": len(feats.canonical)}
    out["validity"] = n_valid / n
    for k in (1000, 10000):
        first = valid_idx[:k]
        out[f"unique@{k}"] = len(np.unique(first)) / len(first) if len(first) else None
    out["novelty"] = None
    if train_sets is not None and feats.canonical:
        from molvae.io import smiles_hashes

        out["novelty"] = float(np.mean(~np.isin(smiles_hashes(feats.canonical), train_sets[0])))

    shared: dict[str, Any] = {"gen": feats.fps, "w": counts.astype(np.float64)}
    if ref_stats is not None:
        shared["ref"] = ref_stats.fps
    if sf_stats is not None:
        shared["sf"] = sf_stats.fps
    with _Runner(n_jobs, shared) as runner:
        if n_valid:
            s1, s2 = _tanimoto(runner, "gen", "gen", "sums", "w", device, progress, "internal diversity")
            out["IntDiv"] = float(1 - (counts * s1 / n_valid).sum() / n_valid)
            out["IntDiv2"] = float(1 - (counts * np.sqrt(s2 / n_valid)).sum() / n_valid)
            out["Filters"] = float((counts * feats.passes).sum() / n_valid)
        else:
            out["IntDiv"] = out["IntDiv2"] = out["Filters"] = None
        acts = None
        if (ref_stats is not None or sf_stats is not None) and n_valid:
            acts = _activations(feats.canonical, runner, device, progress, "ChemNet (FCD)")
            mu, sigma = _mean_cov(acts, counts) if n_valid >= 2 else (None, None)
            frag = _counter(feats.frags, counts, flatten=True)
            scaf = _counter(feats.scaffolds, counts, flatten=False)
        for suffix, stats, key in (("Test", ref_stats, "ref"), ("TestSF", sf_stats, "sf")):
            if stats is None:
                continue
            if not n_valid:
                for m in ("FCD", "SNN", "Frag", "Scaf"):
                    out[f"{m}/{suffix}"] = None
                continue
            out[f"FCD/{suffix}"] = _frechet(stats.fcd_mu, stats.fcd_sigma, mu, sigma) if mu is not None else None
            (best,) = _tanimoto(runner, "gen", key, "max", None, device, progress, f"SNN/{suffix}")
            out[f"SNN/{suffix}"] = float((counts * best).sum() / n_valid)
            out[f"Frag/{suffix}"] = _cosine(stats.frag, frag)
            out[f"Scaf/{suffix}"] = _cosine(stats.scaf, scaf)
    if ref_stats is not None:
        gen_props = np.repeat(feats.props, counts, axis=0)
        for col, name in enumerate(MOSES_PROPERTIES):
            out[name] = _wasserstein(gen_props[:, col], ref_stats.props[:, col]) if n_valid else None

    out.update(_guacamol(gen, feats, ref_stats, train_sets, acts, n_jobs, device, progress))
    if ref_stats is not None:
        out["n_ref"], out["n_ref_invalid"] = ref_stats.n_input, ref_stats.n_invalid
    order = list(METRIC_DESCRIPTIONS)
    return {k: _finite(out[k]) for k in sorted(out, key=order.index)}


def _finite(v: Any) -> Any:
    """Plain Python numbers for JSON; a non-finite score becomes None (JSON has no NaN)."""
    if v is None or isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return None if v is None else int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def _guacamol(gen: list, feats: _Features, ref_stats: ReferenceStats | None, train_sets: tuple | None,
              acts: np.ndarray | None, n_jobs: int, device: str, progress: bool) -> dict[str, float | None]:
    """GuacaMol distribution-learning scores on the first 10,000 (valid / unique) molecules."""
    out: dict[str, float | None] = {}
    first = feats.index[:GUACAMOL_N]
    out["guacamol_validity"] = float((first >= 0).mean())
    valid = feats.index[feats.index >= 0][:GUACAMOL_N]  # first 10k valid, as unique indices
    out["guacamol_uniqueness"] = len({feats.nostereo[j] for j in valid.tolist()}) / len(valid) if len(valid) else None
    unique = list(range(min(GUACAMOL_N, len(feats.canonical))))  # first 10k unique (stereo canonical)
    nostereo = list(dict.fromkeys(feats.nostereo[j] for j in unique))
    out["guacamol_novelty"] = None
    if train_sets is not None and train_sets[1] is not None and unique:
        from molvae.io import smiles_hashes

        out["guacamol_novelty"] = float((~np.isin(smiles_hashes(nostereo), train_sets[1])).sum() / len(unique))
    out["guacamol_kl_score"] = out["guacamol_fcd_score"] = None
    if ref_stats is not None and len(valid):
        desc, sim = _guacamol_features(nostereo, n_jobs, device, progress)
        out["guacamol_kl_score"] = _kl_score(ref_stats.g_desc, ref_stats.g_maxsim, desc, sim)
        w = np.bincount(valid, minlength=len(feats.canonical))
        if acts is not None and w.sum() >= 2:
            mu, sigma = _mean_cov(acts[w > 0], w[w > 0])
            fcd = _frechet(ref_stats.g_fcd_mu, ref_stats.g_fcd_sigma, mu, sigma)
            out["guacamol_fcd_score"] = float(math.exp(-0.2 * fcd))
    return out


# ============================================================================================
# presentation


def format_table(metrics: dict[str, Any], descriptions: bool = True) -> str:
    """The metrics as an aligned text table (counts as integers, scores to 4 decimals, None as '-')."""
    rows = []
    for k, v in metrics.items():
        if v is None:
            text = "-"
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            text = f"{int(v):,}"
        else:
            text = f"{float(v):.4f}"
        rows.append((k, text, METRIC_DESCRIPTIONS.get(k, "") if descriptions else ""))
    w0 = max(len("metric"), *(len(r[0]) for r in rows))
    w1 = max(len("value"), *(len(r[1]) for r in rows))
    lines = [f"{'metric':<{w0}}  {'value':>{w1}}" + ("  meaning" if descriptions else "")]
    lines += [f"{k:<{w0}}  {t:>{w1}}" + (f"  {d}" if d else "") for k, t, d in rows]
    return "\n".join(line.rstrip() for line in lines)


def moses_table_row(metrics: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """One row in the layout of the MOSES results table (``valid, unique_1k, ..., novelty``)."""
    row: dict[str, Any] = {"model": model} if model is not None else {}
    for col, key in MOSES_COLUMNS.items():
        row[col] = metrics.get(key)
    return row
