"""Saving and loading without executing code: safetensors weights, JSON, ``weights_only`` checkpoints.

Every write goes to a temporary file in the same directory and is renamed into place, so a run
killed mid-write leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from molvae.errors import CheckpointError

__all__ = ["atomic_write", "save_weights", "load_weights", "save_checkpoint", "load_checkpoint",
           "load_state", "smiles_hashes", "content_hash"]


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_weights(state_dict: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a state dict as safetensors (contiguous CPU tensors), atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read safetensors weights; a missing or corrupt file is a :class:`CheckpointError`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable weights ({str(exc).splitlines()[0]})") from None


def load_state(module: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Load float32 copies of ``weights`` into ``module``; weights that do not fit its shapes are a
    :class:`CheckpointError` naming ``path`` and the first mismatch (``what``: "weights do not match config.json")."""
    try:
        module.load_state_dict({k: v.float() for k, v in weights.items()})
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise CheckpointError(f"{path}: {what} ({first})") from None


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write a resumable training state (tensors and plain Python values only), atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``: no pickled code is ever executed."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found (nothing to resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or unsafe checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a molvae checkpoint")
    return state


def smiles_hashes(smiles: Iterable[str]) -> np.ndarray:
    """64-bit BLAKE2b hashes of (canonical) SMILES: what novelty checks need, without the strings."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in smiles),
        dtype=np.uint64,
    )


def content_hash(items: Iterable[str]) -> str:
    """A short hex digest of an ordered list of strings (detects a changed dataset on resume)."""
    h = hashlib.blake2b(digest_size=16)
    for s in items:
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()
