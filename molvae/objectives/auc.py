"""PMO's sample-efficiency metric: area under the top-k-mean curve against oracle calls."""

from __future__ import annotations

import heapq
import math
from typing import Iterable

__all__ = ["auc_top_k"]


def auc_top_k(
    scores_in_call_order: Iterable[float | None],
    budget: int = 10000,
    k: int = 10,
    freq: int = 100,
    carry_forward: bool = True,
) -> float:
    """AUC of the top-``k`` mean score against oracle calls, normalized by ``budget`` (Gao et al. 2022).

    ``scores_in_call_order`` holds one entry per charged oracle call (repeated molecules are free, so
    each entry is a new molecule); ``None``/NaN entries use up a call without entering the top-k. The
    top-k mean (of however many scores there are, if fewer than k) is sampled every ``freq`` calls and
    at the last call, integrated with the trapezoid rule from (0, 0), and divided by ``budget``; calls
    beyond the budget are ignored. A run that ends early has its last value carried forward to the
    budget (``carry_forward=True``, as PMO does for finished runs). This is PMO's ``top_auc``
    (mol_opt ``main/optimizer.py``), so an ideal run that scores 1.0 from the first call gets
    ``1 - freq / (2 * budget)`` = 0.995.
    """
    if budget <= 0 or k <= 0 or freq <= 0:
        raise ValueError(f"budget, k and freq must be positive, got {budget}, {k}, {freq}")
    top: list[float] = []  # min-heap of the k best so far
    area, prev, last_checkpoint, n = 0.0, 0.0, 0, 0
    for n, score in enumerate(scores_in_call_order, start=1):
        if n > budget:
            n = budget
            break
        if score is not None and not math.isnan(score):
            if len(top) < k:
                heapq.heappush(top, float(score))
            elif score > top[0]:
                heapq.heapreplace(top, float(score))
        if n % freq == 0:
            now = sum(top) / len(top) if top else 0.0
            area += freq * (now + prev) / 2
            prev, last_checkpoint = now, n
    if n > last_checkpoint:
        now = sum(top) / len(top) if top else 0.0
        area += (n - last_checkpoint) * (now + prev) / 2
        prev = now
    if carry_forward and n < budget:
        area += (budget - n) * prev
    return area / budget
