"""Speed of ``molvae.metrics.evaluate`` against MOSES ``get_all_metrics``, side by side on the same molecules.

Both score the same generated set (default: 30,000 molecules, the mix of
``check_metrics_vs_moses.py``: MOSES-train and ZINC molecules, repeats and invalid strings, or
``--generated FILE``) against the MOSES test and scaffold-test splits with the MOSES training split
for novelty, with the same resources: ``n_jobs`` worker processes (default 2), one BLAS/OpenMP/torch
thread per process, CPU only. Each repeat runs MOSES then molvae; medians and their ratio are printed.

* MOSES runs as users run it: ``get_all_metrics(gen, n_jobs=2, device='cpu')``, which loads the
  reference statistics that molsets ships precomputed, and its own copy of the training split.
* molvae runs ``evaluate(gen, ref=moses_test, ref_scaffolds=moses_test_scaffolds, train=moses_train)``
  from files, with its reference-statistics cache filled by a first, separately timed, evaluation
  (the one-off cost is printed). molvae also computes the GuacaMol scores in that time.

Needs molsets importable (see ``check_metrics_vs_moses.py`` for the scratch environment):

    /tmp/mosesenv/bin/python scripts/bench_metrics.py --n 30000 --repeats 3
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy / torch load their thread pools

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_metrics_vs_moses import DATA, import_moses, make_generated  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f", {int(fh.readline().split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs{mem}, {platform.system()} {platform.release()}"


def load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "load average n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30_000, help="generated molecules (default 30000)")
    ap.add_argument("--generated", type=Path, help="score this SMILES file instead of the built-in mix")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA, help=f"MOSES/ZINC files (default {DATA})")
    ap.add_argument("--cache-dir", type=Path, help="molvae metrics cache (default: a fresh temporary folder)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    moses = import_moses()
    import rdkit

    import molvae
    from molvae.metrics import evaluate

    if args.generated:
        from molvae.metrics import _read_generated

        gen = _read_generated(args.generated)[: args.n]
    else:
        gen, _ = make_generated(args.n, args.data)
    test, test_sf, train = (args.data / f for f in ("moses_test.csv.gz", "moses_test_scaffolds.csv.gz",
                                                    "moses_train.csv.gz"))
    print(f"# machine: {machine()}")
    print(f"# python {platform.python_version()}, rdkit {rdkit.__version__}, torch {torch.__version__}, numpy "
          f"{np.__version__}, molsets {moses.__version__}, molvae {molvae.__version__}")
    print(f"# settings: {len(gen)} generated molecules ({args.generated or 'train/ZINC/repeats/invalid mix'}), "
          f"n_jobs={args.n_jobs} for both, device=cpu, torch threads 1, OMP/MKL/OpenBLAS threads 1, "
          f"{args.repeats} repeats (MOSES then molvae); {load()}")

    tmp = tempfile.TemporaryDirectory()
    cache = args.cache_dir or Path(tmp.name)
    kw = dict(ref=test, ref_scaffolds=test_sf, train=train, n_jobs=args.n_jobs, device="cpu", cache_dir=cache,
              progress=False)
    t0 = time.perf_counter()
    ours = evaluate(gen, **kw)
    t_cold = time.perf_counter() - t0
    print(f"molvae first evaluation (fills the cache: statistics of {test.name}, {test_sf.name}, hashes of "
          f"{train.name}): {t_cold:.1f} s", flush=True)

    t_moses, t_ours = [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        theirs = moses.get_all_metrics(gen, n_jobs=args.n_jobs, device="cpu")
        t_moses.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = evaluate(gen, **kw)
        t_ours.append(time.perf_counter() - t0)
        print(f"repeat {r + 1}: MOSES get_all_metrics {t_moses[-1]:.1f} s, molvae evaluate {t_ours[-1]:.1f} s "
              f"({load()})", flush=True)
    m_moses, m_ours = statistics.median(t_moses), statistics.median(t_ours)
    print(f"\nmedian of {args.repeats}: MOSES get_all_metrics {m_moses:.1f} s, molvae evaluate {m_ours:.1f} s; "
          f"molvae is {m_moses / m_ours:.2f}x as fast (MOSES time / molvae time)")

    print("\nvalues (MOSES uses its shipped precomputed test statistics, molvae recomputes them with this RDKit):")
    for key, mkey in [("validity", "valid"), ("unique@10000", "unique@10000"), ("FCD/Test", "FCD/Test"),
                      ("SNN/Test", "SNN/Test"), ("Frag/Test", "Frag/Test"), ("Scaf/TestSF", "Scaf/TestSF"),
                      ("IntDiv", "IntDiv"), ("Filters", "Filters"), ("novelty", "Novelty")]:
        print(f"  {key:<14} molvae {ours[key]:.4f}   MOSES {float(theirs[mkey]):.4f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
