"""A disk cache of prepared training data: cleaned molecules and their token ids, keyed by content.

Cleaning a large file with RDKit is the slow part of starting a run (about 25 CPU-minutes for the
1.58 million molecules of the MOSES training split), and ``--resume`` used to repeat it every time.
:func:`prepare_cached` stores the result of :func:`molvae.data.prepare_molecules` under
``$MOLVAE_CACHE/prepared/<key>/`` (default ``~/.cache/molvae``), where the key is a digest of the
file's bytes, the cleaning options and the RDKit and SELFIES versions: any run on the same data with
the same options reuses it, and a changed file or option gets a new entry. :func:`tokenize_cached`
does the same for the padded token ids of one vocabulary. The files are plain text, JSON and ``.npy``
(read with ``allow_pickle=False``): reading the cache never executes code. A damaged entry is
recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.data import PreparedData, prepare_molecules
from molvae.vocab import Vocab, tokenize

__all__ = ["prepare_cached", "tokenize_cached", "cache_root"]

CACHE_VERSION = 1  # bump when what an entry holds, or how cleaning works, changes


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$MOLVAE_CACHE/prepared``, else ``~/.cache/molvae/prepared``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("MOLVAE_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "molvae") / "prepared"


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry_key(path: Path, options: dict[str, Any]) -> str:
    import rdkit
    import selfies

    described = {"file": _file_digest(path), "options": options, "rdkit": rdkit.__version__,
                 "selfies": selfies.__version__, "version": CACHE_VERSION}
    return hashlib.blake2b(json.dumps(described, sort_keys=True).encode(), digest_size=12).hexdigest()


def prepare_cached(source: Any, *, max_len: int | None = None, stereo: bool = True,
                   largest_fragment: bool = False, smiles_column: str | None = None, vocab: Vocab | None = None,
                   progress: bool = False, cache_dir: str | Path | None = None) -> PreparedData:
    """:func:`molvae.data.prepare_molecules` with its result cached on disk when ``source`` is a file.

    ``vocab`` (a fine-tuning run's): molecules with other tokens are rejected, naming the token.
    In-memory sources (lists, DataFrames) are prepared as usual and not cached. The returned data's
    ``cache_path`` names its cache entry (``None`` when not cached), for :func:`tokenize_cached`.
    """
    options = {"max_len": max_len, "stereo": stereo, "largest_fragment": largest_fragment,
               "smiles_column": smiles_column}
    is_file = isinstance(source, (str, os.PathLike)) and Path(source).is_file()
    if not is_file:
        return prepare_molecules(source, progress=progress, vocab=vocab, **options)
    described = {**options, "vocab": vocab.itos} if vocab is not None else options
    entry = cache_root(cache_dir) / _entry_key(Path(source), described)
    data = _load_entry(entry, str(source))
    if data is not None:
        if progress:
            print(f"{source}: prepared data read from the cache ({entry})")
        return data
    data = prepare_molecules(source, progress=progress, vocab=vocab, **options)
    try:
        _save_entry(entry, data)
        data.cache_path = entry
    except OSError:  # a read-only or full cache disk costs speed, never the run
        pass
    return data


def _save_entry(entry: Path, data: PreparedData) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        (tmp / "smiles.txt").write_text("\n".join(data.smiles))
        (tmp / "selfies.txt").write_text("\n".join(data.selfies))
        np.save(tmp / "lines.npy", np.asarray(data.lines, dtype=np.int64), allow_pickle=False)
        names = data.names if any(n is not None for n in data.names) else None
        (tmp / "names.json").write_text(json.dumps(names))
        rejects = data.rejects[["line", "input", "reason"]].copy()
        rejects["kind"] = data.reject_kinds
        rejects.to_csv(tmp / "rejects.csv", index=False)
        meta = {"counts": data.counts, "unknown_skipped": data.unknown_skipped, "n": len(data.smiles)}
        (tmp / "meta.json").write_text(json.dumps(meta))  # written last: its presence marks a whole entry
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_entry(entry: Path, label: str) -> PreparedData | None:
    """The cached data, or ``None`` when the entry is missing or damaged (then it is prepared again)."""
    if not (entry / "meta.json").is_file():
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text())
        smiles = (entry / "smiles.txt").read_text().split("\n")
        selfies = (entry / "selfies.txt").read_text().split("\n")
        lines = np.load(entry / "lines.npy", allow_pickle=False).tolist()
        names = json.loads((entry / "names.json").read_text()) or [None] * len(smiles)
        rejects = pd.read_csv(entry / "rejects.csv", dtype={"input": str, "reason": str, "kind": str},
                              keep_default_na=False)
        if not (len(smiles) == len(selfies) == len(lines) == len(names) == meta["n"]):
            return None
        kinds = rejects.pop("kind").tolist()
        return PreparedData(smiles, selfies, lines, names, rejects, meta["counts"], label, kinds,
                            meta["unknown_skipped"], cache_path=entry)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def tokenize_cached(data: PreparedData, vocab: Vocab, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`molvae.vocab.tokenize` of ``data.selfies``, cached beside the data's cache entry
    (one file per vocabulary) when the data came from the cache."""
    if data.cache_path is None:
        return tokenize(data.selfies, vocab, max_len)
    digest = hashlib.blake2b(json.dumps([vocab.itos, max_len]).encode(), digest_size=8).hexdigest()
    path = Path(data.cache_path) / f"tokens-{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            tokens, lengths = saved["tokens"], saved["lengths"]
        if len(tokens) == len(data.selfies):
            return torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(lengths.astype(np.int64))
    except (OSError, ValueError, KeyError):
        pass
    tokens, lengths = tokenize(data.selfies, vocab, max_len)
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tokens.", suffix=".npz", dir=path.parent)
        os.close(fd)
        np.savez(tmp, tokens=tokens.numpy().astype(dtype), lengths=lengths.numpy().astype(np.int32))
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache disk costs speed, never the run
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return tokens, lengths
