"""Recompute the PMO table from committed call logs alone: no model, no oracle, seconds.

    python scripts/pmo_from_logs.py models/zinc250k/pmo/calls            # every method/config found
    python scripts/pmo_from_logs.py runs/bench_opt/calls --method reinvent

Each log is one run of scripts/bench_optimize.py (``TASK__METHOD__seedS__bB__dD__tT__oHASH.csv.gz``:
columns call, smiles, score in call order). The AUC top-10 is PMO's (every 100 calls, from (0, 0),
normalized by the budget, last value carried forward), computed by molvae.objectives.auc_top_k from
the log; the log itself is checked: call numbers 1..n without gaps, n <= budget, no SMILES twice.
Sums are over the 16 tasks PMO scored with GuacaMol's definitions, beside the published rows.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
FORMULA_TASKS = {"isomers_c7h8n2o2", "isomers_c9h10n2o2pf2cl", "sitagliptin_mpo", "zaleplon_mpo"}
PUBLISHED = ["REINVENT", "Graph_GA", "GP_BO", "Genetic_GFN", "Mol_GA", "InVirtuoGen_no_prescreen"]


def read_log(path: Path, budget: int) -> list[float | None]:
    """Scores in call order, after checking the log is a faithful budgeted run."""
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    calls = [int(float(r["call"])) for r in rows]
    if calls != list(range(1, len(calls) + 1)):
        sys.exit(f"{path}: call numbers are not 1..{len(calls)} in order")
    if len(calls) > budget:
        sys.exit(f"{path}: {len(calls)} calls exceed the budget {budget}")
    if len({r["smiles"] for r in rows}) != len(rows):
        sys.exit(f"{path}: a molecule was charged twice")
    return [float(r["score"]) if r["score"] not in ("", "nan") else None for r in rows]


def published() -> dict[str, dict[str, float]]:
    """Per-task means of the published rows (PMO's table and the newer methods' table)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for name in ("pmo_auc_top10.csv", "pmo_newer_methods_auc_top10.csv"):
        path = REFERENCE / name
        if not path.is_file():
            continue
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                for col in PUBLISHED:
                    if r.get(col):
                        out[r["task"]][col] = float(r[col].split("±")[0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", help="folder of call logs (*.csv.gz)")
    ap.add_argument("--method", help="only this method")
    args = ap.parse_args()
    from molvae.objectives import PMO_TASKS, auc_top_k

    runs: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    files = sorted(Path(args.logs).glob("*.csv.gz"))
    if not files:
        sys.exit(f"no call logs (*.csv.gz) in {args.logs}")
    for path in files:
        task, method, seed, budget, n_decode, temperature, options = path.name[:-len(".csv.gz")].split("__")
        if args.method and method != args.method:
            continue
        b = int(budget[1:])
        scores = read_log(path, b)
        runs[(method, b, n_decode, temperature, options)][task].append(auc_top_k(scores, k=10, freq=100, budget=b))
    ref = published()
    for (method, budget, n_decode, temperature, options), tasks in sorted(runs.items()):
        print(f"\n### {method}, budget {budget:,}, {n_decode}, {temperature}, options {options}\n")
        print("| task | seeds | molvae | " + " | ".join(PUBLISHED) + " |")
        print("|---|---|---|" + "---|" * len(PUBLISHED))
        sums = defaultdict(float)
        for task in [t for t in PMO_TASKS if t in tasks]:
            values = tasks[task]
            m = statistics.fmean(values)
            sd = statistics.pstdev(values) if len(values) > 1 else 0.0
            comparable = task not in FORMULA_TASKS
            cells = [f"{ref[task][c]:.3f}" if comparable and c in ref.get(task, {}) else "–" for c in PUBLISHED]
            print(f"| {task}{'' if comparable else ' †'} | {len(values)} | {m:.3f} ± {sd:.3f} | " + " | ".join(cells) + " |")
            if comparable:
                sums["molvae"] += m
                for c in PUBLISHED:
                    sums[c] += ref.get(task, {}).get(c, 0.0)
        n16 = sum(t not in FORMULA_TASKS for t in tasks)
        print(f"| **sum over the {n16} comparable tasks** | | **{sums['molvae']:.3f}** | "
              + " | ".join(f"{sums[c]:.3f}" for c in PUBLISHED) + " |")
    print("\n† formula tasks: the published rows counted atoms differently; not comparable.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
