"""``OptimizationResult``: every molecule a run scored, with helpers to rank, save and plot them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molvae.optimize.storage import redact

__all__ = ["OptimizationResult"]


@dataclass
class OptimizationResult:
    """Every molecule a run scored, in call order, with helpers to rank and plot them.

    ``df`` columns: ``call`` (oracle call number; NA for molecules rejected by a constraint, which
    are not charged), ``smiles``, ``score`` (first objective), one column per objective when there
    are several, ``status`` (done / failed / violated), ``reason``, ``worker``, ``time``, ``seconds``.
    """

    df: pd.DataFrame
    objectives: list[str]
    method: str
    budget: int
    study: str
    storage: str | None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> pd.DataFrame:
        """Rows with a score, in call order."""
        return self.df[self.df["status"].eq("done") & self.df["score"].notna()]

    def best(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` best molecules by the first objective (ties: earlier call first)."""
        return self.scored.sort_values(["score", "call"], ascending=[False, True]).head(k).reset_index(drop=True)

    def pareto(self) -> pd.DataFrame:
        """Molecules no other scored molecule beats on every objective (all maximized).

        With one objective this is the best molecule(s).
        """
        cols = self.objectives if len(self.objectives) > 1 else ["score"]
        df = self.scored.dropna(subset=cols)
        if df.empty:
            return df.reset_index(drop=True)
        values = df[cols].to_numpy(float)
        keep = [i for i, v in enumerate(values)
                if not np.any(np.all(values >= v, axis=1) & np.any(values > v, axis=1))]
        return df.iloc[sorted(keep)].sort_values(cols[0], ascending=False).reset_index(drop=True)

    def auc(self, k: int = 10, freq: int = 100, budget: int | None = None) -> float:
        """PMO's AUC of the top-``k`` mean against oracle calls (see :func:`molvae.objectives.auc_top_k`)."""
        from molvae.objectives import auc_top_k

        charged = self.df[self.df["call"].notna()].sort_values("call")
        scores = [None if pd.isna(s) else float(s) for s in charged["score"]]
        return auc_top_k(scores, budget=budget or self.budget, k=k, freq=freq)

    def plot(self, out_dir: str | Path, n_mols: int = 12) -> list[Path]:
        """Write the progress curve, the Pareto scatter (two objectives) and a grid of the best molecules."""
        from molvae.optimize.plots import plot_result

        return plot_result(self, out_dir, n_mols=n_mols)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``calls.csv`` (the whole log), ``best.csv``, ``summary.json`` and, with several objectives,
        ``pareto.csv``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "calls.csv", out / "best.csv", out / "summary.json"]
        self.df.to_csv(paths[0], index=False)
        self.best(100).to_csv(paths[1], index=False)
        if len(self.objectives) > 1:
            paths.append(out / "pareto.csv")
            self.pareto().to_csv(paths[-1], index=False)
        paths[2].write_text(json.dumps(self.summary(), indent=2, default=str) + "\n")
        return paths

    def summary(self) -> dict[str, Any]:
        """Settings, counts, timings and the best molecules, as a JSON-ready dict."""
        best = self.best(3)
        return {
            "objectives": self.objectives, "method": self.method, "budget": self.budget,
            "study": self.study, "storage": redact(self.storage) if self.storage else "memory",
            "calls": int(self.df["call"].notna().sum()),
            "best": [{"smiles": s, "score": float(v)} for s, v in zip(best["smiles"], best["score"])],
            "auc_top10": self.auc() if self.budget else None,
            **self.stats,
        }

    def __repr__(self) -> str:
        top = self.best(1)
        best = f"{top['score'].iloc[0]:.4g} {top['smiles'].iloc[0]}" if len(top) else "none"
        return (f"OptimizationResult({'+'.join(self.objectives)}, method={self.method}, "
                f"calls={int(self.df['call'].notna().sum())}/{self.budget}, best={best})")
