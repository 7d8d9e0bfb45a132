"""Reference statistics: what the metrics need from a reference set (:class:`ReferenceStats`) and the
novelty index of a training set, computed once and cached on disk under ``$MOLVAE_CACHE/metrics``,
and the statistics shipped with molvae for the named sets (``molvae/reference/``)."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from molvae.errors import DataError
from molvae.metrics._fcd import _activations, _mean_cov
from molvae.metrics._features import (GUACAMOL_N, GUACAMOL_SEED, _counter, _featurize, _guacamol_features,
                                      _task_canonical)
from molvae.metrics._runner import POOL_MIN, _chunks, _device, _n_jobs, _Runner
from molvae.progress import progress_bar

STATS_VERSION = 1  # bump when what the cache holds, or how it is computed, changes


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


def reference_statistics(ref: Any, n_jobs: int | None = None, device: str = "auto",
                         cache_dir: str | Path | None = None, progress: bool = True) -> ReferenceStats:
    """Statistics of a reference set (list, file or named set), from the disk cache when present.

    The cache key hashes the file's bytes (or, for an in-memory list, its SMILES in order), the
    statistics format and the RDKit version; entries live in ``cache_dir`` (default
    ``$MOLVAE_CACHE/metrics``). Statistics shipped with molvae for that key come first.
    """
    return _reference_stats(ref, "reference set", _n_jobs(n_jobs), _device(device), cache_dir, progress)


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
    bar = progress_bar(len(smiles), desc="training set", unit="mol", disable=not progress, leave=False)
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

REFERENCE_DIR = Path(__file__).parent.with_name("reference")  # molvae/reference/
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
