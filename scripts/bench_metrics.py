"""Speed of ``molvae.metrics.evaluate`` against MOSES ``get_all_metrics``, side by side on the same molecules.

Both score the same generated set against the full MOSES test and scaffold-test splits, with the
MOSES training split for novelty, with the same resources: ``n_jobs`` worker processes (default 2),
one BLAS/OpenMP/torch thread per process, CPU only. The generated set is ``--source scaffolds``
(the first ``--n`` molecules of the scaffold test split plus two invalid strings, as in the issue
that asked for this), ``--source mix`` (the mix of ``check_metrics_vs_moses.py``: MOSES-train and
ZINC molecules, repeats and invalid strings) or ``--generated FILE``.

Each side runs in a fresh process of its own environment (MOSES in the scratch venv, molvae in
``.venv``) and calls its evaluation twice: **cold** is the first call (for molvae: an empty metrics
cache, with the statistics shipped in ``molvae/reference/``, as right after ``pip install``),
**warm** the second. Imports are timed apart. The load average is printed beside every timing (the
machine may be shared). molvae also computes the GuacaMol scores in its time.

* MOSES: ``get_all_metrics(gen, n_jobs=2, device='cpu')``, its shipped test statistics and training split.
* molvae: ``evaluate(gen, ref=moses_test.csv.gz, ref_scaffolds=moses_test_scaffolds.csv.gz,
  train=moses_train.csv.gz)`` from the files (byte-identical to the named sets, so the shipped
  statistics apply); ``--cache-dir`` to reuse a cache instead of an empty one.

    .venv/bin/python scripts/bench_metrics.py --n 3000 --source scaffolds
    .venv/bin/python scripts/bench_metrics.py --n 30000 --source scaffolds --repeats 1
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy / torch load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from benchenv import machine  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_metrics_vs_moses import DATA, ROOT, read_column  # noqa: E402

MOSES_PYTHON = Path("/tmp/mosesenv/bin/python")
SHOWN = [("validity", "valid"), ("unique@10000", "unique@10000"), ("FCD/Test", "FCD/Test"),
         ("SNN/Test", "SNN/Test"), ("Frag/Test", "Frag/Test"), ("Scaf/Test", "Scaf/Test"),
         ("FCD/TestSF", "FCD/TestSF"), ("SNN/TestSF", "SNN/TestSF"), ("Scaf/TestSF", "Scaf/TestSF"),
         ("IntDiv", "IntDiv"), ("IntDiv2", "IntDiv2"), ("Filters", "Filters"), ("novelty", "Novelty"),
         ("logP", "logP"), ("weight", "weight")]


def load() -> str:
    try:
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "load n/a"


def generated(args) -> list:
    """The generated set both sides score."""
    if args.generated:
        sys.path.insert(0, str(ROOT))
        from molvae.data import read_generated

        return read_generated(args.generated)[: args.n]
    if args.source == "scaffolds":
        return read_column(args.data / "moses_test_scaffolds.csv.gz", args.n) + ["C1CC", "not a smiles"]
    from check_metrics_vs_moses import make_generated

    return make_generated(args.n, args.data)[0]


def worker(args) -> None:
    """In a fresh process: import, evaluate ``--calls`` times, print one JSON line."""
    gen = json.loads(Path(args.gen_file).read_text())
    t0 = time.perf_counter()
    if args.worker == "moses":
        from check_metrics_vs_moses import import_moses

        moses = import_moses()
        run = lambda: moses.get_all_metrics(gen, n_jobs=args.n_jobs, device="cpu")  # noqa: E731
    else:
        import torch

        torch.set_num_threads(1)
        from molvae.metrics import evaluate

        files = [args.data / f for f in ("moses_test.csv.gz", "moses_test_scaffolds.csv.gz", "moses_train.csv.gz")]
        kw = dict(ref=files[0], ref_scaffolds=files[1], train=files[2], n_jobs=args.n_jobs, device="cpu",
                  cache_dir=args.cache_dir, progress=False)
        run = lambda: evaluate(gen, **kw)  # noqa: E731
    out = {"import_s": time.perf_counter() - t0, "calls": []}
    for _ in range(args.calls):
        before = load()
        t0 = time.perf_counter()
        values = run()
        out["calls"].append({"s": time.perf_counter() - t0, "load_before": before, "load_after": load()})
    out["values"] = {k: None if v is None else float(v) for k, v in dict(values).items()}
    print("RESULT " + json.dumps(out), flush=True)


def run_worker(side: str, args, gen_file: str, cache_dir: str) -> dict:
    python = str(MOSES_PYTHON) if side == "moses" else sys.executable
    cmd = [python, __file__, "--worker", side, "--gen-file", gen_file, "--n-jobs", str(args.n_jobs),
           "--calls", str(args.calls), "--data", str(args.data), "--cache-dir", cache_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"{side} worker failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="generated molecules (default 3000)")
    ap.add_argument("--source", choices=["scaffolds", "mix"], default="scaffolds")
    ap.add_argument("--generated", type=Path, help="score this SMILES file instead")
    ap.add_argument("--repeats", type=int, default=1, help="fresh-process rounds (MOSES then molvae each)")
    ap.add_argument("--calls", type=int, default=2, help="evaluations per process: cold, then warm")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA, help=f"MOSES/ZINC files (default {DATA})")
    ap.add_argument("--cache-dir", type=Path, help="molvae metrics cache (default: a fresh empty folder per round)")
    ap.add_argument("--worker", choices=["moses", "molvae"], help=argparse.SUPPRESS)
    ap.add_argument("--gen-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    gen = generated(args)
    tmp = tempfile.TemporaryDirectory()
    gen_file = Path(tmp.name) / "gen.json"
    gen_file.write_text(json.dumps(gen))
    print(f"# machine: {machine()}")
    print(f"# settings: {len(gen)} generated molecules ({args.generated or args.source}), n_jobs={args.n_jobs} "
          f"for both, device=cpu, torch/OMP/MKL/OpenBLAS threads 1, {args.repeats} round(s) of a fresh process "
          f"per side, {args.calls} calls each (cold, warm); {load()}", flush=True)
    results: dict[str, list] = {"moses": [], "molvae": []}
    for r in range(args.repeats):
        for side in ("moses", "molvae"):
            cache = str(args.cache_dir or Path(tmp.name) / f"cache{r}")
            res = run_worker(side, args, str(gen_file), cache)
            results[side].append(res)
            calls = ", ".join(f"{'cold' if i == 0 else 'warm'} {c['s']:.1f} s ({c['load_before']} -> "
                              f"{c['load_after']})" for i, c in enumerate(res["calls"]))
            print(f"round {r + 1} {side:>6}: import {res['import_s']:.1f} s; {calls}", flush=True)
    for i, label in enumerate(["cold", "warm"][: args.calls]):
        t_m = min(res["calls"][i]["s"] for res in results["moses"])
        t_o = min(res["calls"][i]["s"] for res in results["molvae"])
        print(f"{label}: MOSES {t_m:.1f} s, molvae {t_o:.1f} s: molvae {t_m / t_o:.1f}x as fast (best of rounds)")
    theirs, ours = results["moses"][-1]["values"], results["molvae"][-1]["values"]
    print("\nvalues (MOSES with its shipped precomputed statistics, molvae with its own, this RDKit):")
    for key, mkey in SHOWN:
        a, b = ours.get(key), theirs.get(mkey)
        print(f"  {key:<13} molvae {a if a is None else f'{a:.4f}':>8}   MOSES {b if b is None else f'{b:.4f}':>8}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
