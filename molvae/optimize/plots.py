"""Pictures of a run: progress against oracle calls, the Pareto front, the best molecules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = ["plot_progress", "plot_pareto", "plot_molecules", "plot_result"]


class ResultLike(Protocol):
    """What the plots read of a :class:`molvae.optimize.result.OptimizationResult` (which draws itself
    with :func:`plot_result`, so this module sits below it and names its shape only)."""

    df: pd.DataFrame
    objectives: list[str]
    method: str
    budget: int

    @property
    def scored(self) -> pd.DataFrame: ...

    def best(self, k: int = 10) -> pd.DataFrame: ...

    def pareto(self) -> pd.DataFrame: ...


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    """Lay out, write (PNG, 120 dpi) and close ``fig``."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _curves(scores: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Best and top-``k`` mean after each call (NaN scores take a call but no place)."""
    import heapq

    best, topk, heap = np.full(len(scores), np.nan), np.full(len(scores), np.nan), []
    for i, s in enumerate(scores):
        if not np.isnan(s):
            if len(heap) < k:
                heapq.heappush(heap, s)
            elif s > heap[0]:
                heapq.heapreplace(heap, s)
        if heap:
            best[i], topk[i] = max(heap), float(np.mean(heap))
    return best, topk


def plot_progress(result: ResultLike, path: str | Path) -> Path:
    """Best score and top-10 mean against oracle calls (first objective)."""
    plt = _pyplot()
    charged = result.df[result.df["call"].notna()].sort_values("call")
    calls = charged["call"].to_numpy(float)
    best, top10 = _curves(charged["score"].to_numpy(float))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(calls, best, label="best")
    ax.plot(calls, top10, label="top-10 mean")
    ax.scatter(calls, charged["score"], s=3, alpha=0.25, color="grey", label="each call")
    ax.set_xlabel("oracle calls")
    ax.set_ylabel(result.objectives[0])
    ax.set_xlim(0, max(result.budget, len(calls), 1))
    ax.set_title(f"{'+'.join(result.objectives)} ({result.method})")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pareto(result: ResultLike, path: str | Path) -> Path:
    """Scatter of the first two objectives with the Pareto front highlighted."""
    plt = _pyplot()
    a, b = result.objectives[:2]
    scored, front = result.scored, result.pareto().sort_values(a)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(scored[a], scored[b], s=4, alpha=0.3, color="grey", label="scored")
    ax.plot(front[a], front[b], "o-", color="C3", ms=4, label=f"Pareto front ({len(front)})")
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_molecules(result: ResultLike, path: str | Path, n: int = 12, per_row: int = 4) -> Path:
    """A grid of the ``n`` best molecules with their scores and call numbers."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    best = result.best(n)
    mols = [Chem.MolFromSmiles(s) for s in best["smiles"]]
    legends = [f"{v:.3f} (call {c})" for v, c in zip(best["score"], best["call"])]
    img = Draw.MolsToGridImage(mols, molsPerRow=per_row, subImgSize=(250, 200), legends=legends)
    path = Path(path)
    img.save(str(path))
    return path


def plot_result(result: ResultLike, out_dir: str | Path, n_mols: int = 12) -> list[Path]:
    """``progress.png``, ``pareto.png`` (two or more objectives) and ``best_molecules.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if len(result.scored):
        paths.append(plot_progress(result, out / "progress.png"))
        if len(result.objectives) >= 2:
            paths.append(plot_pareto(result, out / "pareto.png"))
        paths.append(plot_molecules(result, out / "best_molecules.png", n=n_mols))
    return paths
