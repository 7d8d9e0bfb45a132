"""Build the reference statistics that molvae ships for the named MOSES sets (``molvae/reference/``).

For ``moses-test`` and ``moses-test-scaffolds``: what ``molvae.metrics.reference_statistics``
computes (ChemNet mean and covariance, packed Morgan fingerprints for SNN, fragment and scaffold
counts, property values, the GuacaMol subset); for ``moses-train``: the novelty index (sorted
64-bit hashes of the canonical SMILES, with and without stereo). The numbers come from molvae's own
code, with the RDKit installed here; ``index.json`` records that version, ``STATS_VERSION`` and each
file's content key, so an installation with another RDKit recomputes instead of trusting them.

Only this script reads the development copies of the data (``/work/shared/data``, byte-identical
to the named datasets' downloads: the SHA-256 sums are checked). The slow part is cached in
``--cache-dir`` set by set, so an interrupted build continues where it stopped:

    .venv/bin/python scripts/make_reference_stats.py --n-jobs 1            # all three sets
    .venv/bin/python scripts/make_reference_stats.py --sets moses-test     # only one
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = ("moses-test", "moses-train", "moses-test-scaffolds")  # the order they are built in


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help=f"folder with the MOSES files (default {DATA})")
    ap.add_argument("--out", type=Path, default=ROOT / "molvae" / "reference", help="where the files go")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/molvae-refbuild"),
                    help="molvae metrics cache used while building (kept, so a rerun is quick)")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)}")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--compute-only", action="store_true", help="fill --cache-dir, write nothing")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from molvae import metrics as M
    from molvae.data import DATASETS, MOSES_FILES, _sha256

    sha = {local: digest for local, digest, _ in MOSES_FILES.values()}
    names = [s for s in args.sets.split(",") if s]
    for name in names:
        if name not in SETS:
            ap.error(f"unknown set {name!r}; expected some of {', '.join(SETS)}")
        path = args.data / DATASETS[name][1]
        if _sha256(path) != sha[path.name]:
            ap.error(f"{path}: not the file molvae downloads for {name} (SHA-256 differs)")
        t0 = time.perf_counter()
        if name == "moses-train":
            stereo, nostereo = M._train_hashes(path, args.n_jobs, args.cache_dir, progress=True)
            what = f"{len(stereo):,} / {len(nostereo):,} hashes"
        else:
            stats = M.reference_statistics(path, n_jobs=args.n_jobs, device="cpu", cache_dir=args.cache_dir)
            what = f"{len(stats.fps):,} unique valid molecules"
        print(f"{name}: {what} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.compute_only:
            continue
        key, _ = M._source(path, name, "train" if name == "moses-train" else "ref")
        if name == "moses-train":
            written = M._ship_train(args.out, name, key, sha[path.name], stereo, nostereo)
        else:
            written = M._ship_reference(args.out, name, sha[path.name], stats)
        print(f"  wrote {written} ({written.stat().st_size / 2**20:.2f} MiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
