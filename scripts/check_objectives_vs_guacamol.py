"""Compare molvae's 20 PMO objectives with GuacaMol's own scoring functions, molecule by molecule.

GuacaMol is not a molvae dependency (and its distribution benchmarks need packages we do not use), so
install it on its own, without dependencies, somewhere outside the project venv:

    pip install --no-deps --target /tmp/guacamol_pkg guacamol
    python scripts/check_objectives_vs_guacamol.py --guacamol-path /tmp/guacamol_pkg

Two shims make GuacaMol 0.5.5 importable with today's SciPy and without ``fcd``: ``scipy.histogram``
(removed from SciPy) is aliased to ``numpy.histogram``, and an empty ``fcd`` module stands in for the
Frechet benchmark's import. Neither is on the path of a goal-directed scoring function.

Prints, per task, the largest absolute difference between the two implementations over the target
molecules plus N molecules of a seeded shuffle of ZINC-250k, and exits 1 if any exceeds 1e-9.
"""

from __future__ import annotations

import argparse
import gzip
import platform
import random
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZINC = ROOT.parent / "shared" / "data" / "zinc250k.smi.gz"


def import_guacamol(path: str | None):
    if path:
        sys.path.insert(0, path)
    import numpy as np
    import scipy

    if not hasattr(scipy, "histogram"):
        scipy.histogram = np.histogram  # removed from SciPy; guacamol.utils.chemistry imports it
    sys.modules.setdefault("fcd", types.ModuleType("fcd"))  # only the Frechet benchmark uses it
    import guacamol
    from guacamol import benchmark_suites, standard_benchmarks
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")  # after guacamol's import, which resets the log level; its legacy
    # fingerprint calls print a deprecation warning per molecule

    return guacamol, benchmark_suites, standard_benchmarks


def guacamol_tasks(benchmark_suites, standard_benchmarks) -> dict:
    by_name = {b.name: b.objective for b in benchmark_suites.goal_directed_suite_v2()}
    return {
        "albuterol_similarity": by_name["Albuterol similarity"],
        "amlodipine_mpo": by_name["Amlodipine MPO"],
        "celecoxib_rediscovery": by_name["Celecoxib rediscovery"],
        "deco_hop": by_name["Deco Hop"],
        "fexofenadine_mpo": by_name["Fexofenadine MPO"],
        "isomers_c7h8n2o2": standard_benchmarks.isomers_c7h8n2o2().objective,
        "isomers_c9h10n2o2pf2cl": by_name["C9H10N2O2PF2Cl"],
        "median1": by_name["Median molecules 1"],
        "median2": by_name["Median molecules 2"],
        "mestranol_similarity": by_name["Mestranol similarity"],
        "osimertinib_mpo": by_name["Osimertinib MPO"],
        "perindopril_mpo": by_name["Perindopril MPO"],
        "qed": standard_benchmarks.qed_benchmark().objective,
        "ranolazine_mpo": by_name["Ranolazine MPO"],
        "scaffold_hop": by_name["Scaffold Hop"],
        "sitagliptin_mpo": by_name["Sitagliptin MPO"],
        "thiothixene_rediscovery": by_name["Thiothixene rediscovery"],
        "troglitazone_rediscovery": by_name["Troglitazone rediscovery"],
        "valsartan_smarts": by_name["Valsartan SMARTS"],
        "zaleplon_mpo": by_name["Zaleplon MPO"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guacamol-path", help="directory holding the guacamol package (pip --target)")
    parser.add_argument("-n", type=int, default=500, help="ZINC-250k molecules to compare on (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        guacamol, suites, standard = import_guacamol(args.guacamol_path)
    except ImportError as exc:
        print(f"cannot import guacamol ({exc}); see this script's docstring", file=sys.stderr)
        return 2
    import rdkit

    from molvae.objectives import PMO_TASKS, get_objective
    from molvae.objectives.guacamol import TARGETS

    with gzip.open(ZINC, "rt") as fh:
        zinc = [line.strip() for line in fh if line.strip()]
    random.Random(args.seed).shuffle(zinc)
    molecules = list(TARGETS.values()) + [
        "Cc1ccc(N)cc1[N+](=O)[O-]",  # a C7H8N2O2 isomer
        "CN(C=O)Cc1ccc(-c2ccccc2)cc1",  # contains the valsartan SMARTS
        "CCCCC(=O)N(Cc1ccc(-c2ccccc2-c2nn[nH]n2)cc1)C(C(=O)O)C(C)C",  # valsartan
    ] + zinc[: args.n]

    print(f"guacamol {getattr(guacamol, '__version__', '?')} vs molvae; RDKit {rdkit.__version__}; "
          f"Python {platform.python_version()}; {len(molecules)} molecules ({len(TARGETS)} targets + "
          f"3 probes + {args.n} ZINC-250k, shuffle seed {args.seed})")
    theirs = guacamol_tasks(suites, standard)
    worst_overall = 0.0
    print(f"{'task':26s} {'max |diff|':>11s} {'ours mean':>10s} {'theirs mean':>11s} {'ms ours':>8s} {'ms theirs':>9s}")
    for task in PMO_TASKS:
        ours = get_objective(task)
        t0 = time.perf_counter()
        a = [ours(s) for s in molecules]
        t1 = time.perf_counter()
        b = [theirs[task].score(s) for s in molecules]
        t2 = time.perf_counter()
        diffs = [abs(x - y) for x, y in zip(a, b)]
        worst = max(diffs)
        worst_overall = max(worst_overall, worst)
        print(f"{task:26s} {worst:11.2e} {sum(a) / len(a):10.4f} {sum(b) / len(b):11.4f} "
              f"{1e3 * (t1 - t0) / len(molecules):8.3f} {1e3 * (t2 - t1) / len(molecules):9.3f}")
    print(f"max abs diff over all 20 tasks: {worst_overall:.2e}")
    return 0 if worst_overall <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
