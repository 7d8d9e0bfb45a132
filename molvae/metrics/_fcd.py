"""The Frechet ChemNet distance: ChemNet (``fcd_torch``'s network and weights) activations of canonical
SMILES, their weighted mean and covariance, and the Frechet distance between two Gaussians."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from molvae.metrics._runner import POOL_MIN, _CACHE, _chunks, _Runner, _torch_threads
from molvae.progress import progress_bar

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


def _activations(smiles: list[str], runner: _Runner, device: str, progress: bool, desc: str) -> np.ndarray:
    """ChemNet activations: batched on the GPU, or split over the worker processes on the CPU."""
    if not smiles:
        return np.zeros((0, 512), dtype=np.float32)
    bar = progress_bar(len(smiles), desc=desc, unit="mol", disable=not progress, leave=False)
    try:
        if device != "cpu":
            return _chemnet_activations(smiles, device, batch_size=1024, bar=bar)
        spans = _chunks(len(smiles), runner.n_jobs, lo=256, hi=2048)
        parts = runner.map(_task_chemnet, [smiles[a:b] for a, b in spans], [b - a for a, b in spans],
                           parallel=len(smiles) >= POOL_MIN, bar=bar)
        return np.concatenate(parts)
    finally:
        bar.close()


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
