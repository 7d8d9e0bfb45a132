"""Check molvae.metrics against the reference implementations on the same molecules.

MOSES metrics against MOSES's own ``get_all_metrics`` (molsets 0.3.1): within 1e-3, FCD within 1 %.
GuacaMol scores against the guacamol 0.5.5 benchmark classes (validity, uniqueness, novelty, KL)
and against its FCD protocol computed with fcd_torch (guacamol itself needs Keras for FCD).

The generated set mixes MOSES training molecules (not novel), ZINC-250k molecules (novel; charged
ones and PAINS hits exercise the filters), repeats, and invalid entries (None, '', garbage, valence
errors), so every metric sees something non-trivial.

Neither molsets nor guacamol is a molvae dependency; run this in a scratch environment that has
them beside molvae (they install with ``--no-deps``; their other needs are molvae's own):

    python -m venv /tmp/mosesenv
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \\
        > /tmp/mosesenv/lib/python3.11/site-packages/molvae_main.pth
    /tmp/mosesenv/bin/pip install --no-deps molsets==0.3.1 guacamol==0.5.5
    /tmp/mosesenv/bin/python scripts/check_metrics_vs_moses.py --n-gen 30000 --n-ref 20000

Two traps in molsets 0.3.1 on today's libraries are patched here, on the reference side only:
import shims (``rdkit.six``, ``pandas.DataFrame.append``, ``numpy.NaN``) and Frag/Scaf's integer
count vectors, which overflow inside SciPy 1.17's cosine at about 30,000 molecules (Frag reads 1.0):
counts are cast to float before the cosine (the unpatched value is printed too).
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
import types
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def import_moses():
    """Import molsets 0.3.1 with the shims it needs on current RDKit / pandas / NumPy."""
    import numpy as np
    import pandas as pd

    six = types.ModuleType("rdkit.six")
    six.iteritems = lambda d: iter(d.items())
    sys.modules.setdefault("rdkit.six", six)
    import rdkit

    rdkit.six = sys.modules["rdkit.six"]
    if not hasattr(pd.DataFrame, "append"):
        pd.DataFrame.append = lambda self, other, sort=False, ignore_index=False: pd.concat(
            [self, other], sort=sort, ignore_index=ignore_index)
    if not hasattr(np, "NaN"):
        np.NaN = np.nan
    import warnings

    warnings.filterwarnings("ignore")
    import moses
    from moses.metrics import metrics as mm

    original = mm.cos_similarity

    def cos_similarity_float(ref_counts, gen_counts):
        """MOSES cos_similarity with the counts cast to float (no int overflow in SciPy's cosine)."""
        if len(ref_counts) == 0 or len(gen_counts) == 0:
            return np.nan
        keys = np.unique(list(ref_counts.keys()) + list(gen_counts.keys()))
        ref_vec = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
        gen_vec = np.array([gen_counts.get(k, 0) for k in keys], dtype=float)
        return 1 - mm.cos_distance(ref_vec, gen_vec)

    mm.cos_similarity = cos_similarity_float
    mm.cos_similarity_original = original
    return moses


def read_column(path: Path, n: int | None = None, offset: int = 0) -> list[str]:
    with gzip.open(path, "rt") as fh:
        header = next(fh)
        rows = []
        for i, line in enumerate(fh):
            if i < offset:
                continue
            rows.append(line.strip().split(",")[0] if "," in header else line.split()[0])
            if n is not None and len(rows) >= n:
                break
    return rows


def read_zinc(path: Path, n: int) -> list[str]:
    with gzip.open(path, "rt") as fh:
        out = [line.split()[0] for _, line in zip(range(n), fh)]
    return out


def make_generated(n: int, data: Path, seed: int = 0) -> tuple[list, list[str]]:
    """(generated list with invalid entries, training subset holding the 'train' part)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    train = read_column(data / "moses_train.csv.gz", 200_000)
    n_train, n_zinc, n_dup = int(n * 0.6), int(n * 0.3), int(n * 0.05)
    n_bad = n - n_train - n_zinc - n_dup
    part_train = [train[i] for i in rng.choice(len(train), n_train, replace=False)]
    part_zinc = read_zinc(data / "zinc250k.smi.gz", n_zinc)
    base = part_train + part_zinc
    dups = [base[i] for i in rng.choice(len(base), n_dup)]
    bad_kinds = [None, "", "C1CC", "c1ccccc", "CC(C)(C)(C)(C)C", "xyz", "C=C=C=", "[Xe]([Xe])", "N(=O)=O=O"]
    bad = [bad_kinds[i % len(bad_kinds)] for i in range(n_bad)]
    gen = base + dups + bad
    order = rng.permutation(len(gen))
    return [gen[i] for i in order], train


class ListGenerator:
    """A guacamol DistributionMatchingGenerator that hands out a fixed list in order."""

    def __init__(self, smiles: list[str]):
        self.smiles, self.pos = smiles, 0

    def generate(self, number_samples: int) -> list[str]:
        out = self.smiles[self.pos:self.pos + number_samples]
        self.pos += number_samples
        return out


def guacamol_reference(gen: list, ref: list[str], train: list[str]) -> dict[str, float]:
    """GuacaMol's own benchmark classes on the same lists (None/'' given as an invalid string:
    guacamol's unique sampling would otherwise count '' as a molecule)."""
    import numpy as np
    import scipy

    if not hasattr(scipy, "histogram"):
        scipy.histogram = np.histogram
    from guacamol import distribution_learning_benchmark as dlb
    from guacamol.utils.data import get_random_subset
    from guacamol.utils.sampling_helpers import sample_valid_molecules

    g = [s if s else "invalid!" for s in gen]
    out = {
        "guacamol_validity": dlb.ValidityBenchmark(10_000).assess_model(ListGenerator(g)).score,
        "guacamol_uniqueness": dlb.UniquenessBenchmark(10_000).assess_model(ListGenerator(g)).score,
        "guacamol_novelty": dlb.NoveltyBenchmark(10_000, train).assess_model(ListGenerator(g)).score,
        "guacamol_kl_score": dlb.KLDivBenchmark(10_000, ref).assess_model(ListGenerator(g)).score,
    }
    from fcd_torch import FCD

    fcd = FCD(device="cpu", n_jobs=1)
    ref_sub = get_random_subset(ref, 10_000, seed=42)
    valid = sample_valid_molecules(ListGenerator(g), 10_000)
    out["guacamol_fcd_score"] = float(np.exp(-0.2 * fcd(ref_sub, valid)))
    return out


def frag_trap(gen: list) -> None:
    """MOSES's own integer cosine on its shipped full-test fragment counts: SciPy's int64 product
    of the squared norms overflows; molvae (and the patched reference above) use float counts."""
    import warnings

    from moses.dataset import get_statistics
    from moses.metrics import metrics as mm
    from moses.metrics.utils import compute_fragments
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    f_ref = get_statistics("test")["Frag"]["frag"]  # MOSES's precomputed counts of its 176,074 test molecules
    f_gen = compute_fragments([mm.get_mol(s) for s in mm.remove_invalid(gen, canonize=True)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            original = f"{mm.cos_similarity_original(f_ref, f_gen):.6f}"
        except ValueError as exc:
            original = f"error ({exc})"
    print(f"\nMOSES Frag of these {len(gen)} molecules against its full test set: original integer cosine "
          f"{original}; with float counts {mm.cos_similarity(f_ref, f_gen):.6f}")


MOSES_KEYS = {  # molvae key -> MOSES key
    "validity": "valid", "unique@1000": "unique@1000", "unique@10000": "unique@10000", "novelty": "Novelty",
    "IntDiv": "IntDiv", "IntDiv2": "IntDiv2", "Filters": "Filters",
    "FCD/Test": "FCD/Test", "SNN/Test": "SNN/Test", "Frag/Test": "Frag/Test", "Scaf/Test": "Scaf/Test",
    "FCD/TestSF": "FCD/TestSF", "SNN/TestSF": "SNN/TestSF", "Frag/TestSF": "Frag/TestSF",
    "Scaf/TestSF": "Scaf/TestSF", "logP": "logP", "SA": "SA", "QED": "QED", "weight": "weight",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-gen", type=int, default=30_000, help="generated molecules (default 30000)")
    ap.add_argument("--n-ref", type=int, default=20_000, help="molecules of each MOSES test split used as ref")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=DATA, help=f"folder with the MOSES/ZINC files (default {DATA})")
    ap.add_argument("--no-guacamol", action="store_true", help="skip the guacamol comparison")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    moses = import_moses()

    import molvae
    from molvae.metrics import evaluate

    gen, train = make_generated(args.n_gen, args.data)
    ref = read_column(args.data / "moses_test.csv.gz", args.n_ref)
    ref_sf = read_column(args.data / "moses_test_scaffolds.csv.gz", args.n_ref)
    import scipy

    print(f"# machine: {machine()}; numpy {np.__version__}, scipy {scipy.__version__}, "
          f"molsets {moses.__version__}, molvae {molvae.__version__}")
    print(f"# generated: {len(gen)} ({sum(1 for s in gen if not s)} None/empty); ref: first {len(ref)} of "
          f"moses_test / moses_test_scaffolds; train: first {len(train)} of moses_train; n_jobs={args.n_jobs}, "
          "torch threads 1, device cpu")

    t0 = time.perf_counter()
    theirs = moses.get_all_metrics(gen, n_jobs=args.n_jobs, device="cpu", test=ref, test_scaffolds=ref_sf,
                                   train=train)
    t_moses = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        ours = evaluate(gen, ref=ref, ref_scaffolds=ref_sf, train=train, n_jobs=args.n_jobs, device="cpu",
                        cache_dir=cache, progress=False)
        t_ours = time.perf_counter() - t0

    rows, failed = [], 0
    for key, mkey in MOSES_KEYS.items():
        a, b = ours[key], float(theirs[mkey])
        tol = 0.01 * abs(b) if key.startswith("FCD") else 1e-3
        ok = a is not None and abs(a - b) <= tol
        failed += not ok
        rows.append((key, a, b, "MOSES", tol, ok))
    if not args.no_guacamol:
        from rdkit import RDLogger

        RDLogger.DisableLog("rdApp.*")
        t0 = time.perf_counter()
        g = guacamol_reference(gen, ref, train)
        t_guac = time.perf_counter() - t0
        for key, b in g.items():
            a = ours[key]
            tol = 0.01 * abs(b) if key == "guacamol_fcd_score" else 1e-3
            ok = a is not None and abs(a - b) <= tol
            failed += not ok
            rows.append((key, a, b, "guacamol" if key != "guacamol_fcd_score" else "guacamol+fcd_torch", tol, ok))

    print(f"\n{'metric':<22}{'molvae':>12}{'reference':>12}{'|diff|':>11}{'tolerance':>11}  source")
    for key, a, b, src, tol, ok in rows:
        diff = abs(a - b) if a is not None else float("nan")
        print(f"{key:<22}{a if a is not None else float('nan'):>12.6f}{b:>12.6f}{diff:>11.2e}{tol:>11.1e}  "
              f"{src}{'' if ok else '   <-- MISMATCH'}")

    frag_trap(gen)
    print(f"time: MOSES get_all_metrics {t_moses:.1f} s; molvae evaluate (cold reference cache, GuacaMol "
          f"scores included) {t_ours:.1f} s" + ("" if args.no_guacamol else f"; guacamol reference {t_guac:.1f} s"))
    print(f"{len(rows) - failed}/{len(rows)} metrics agree" + ("" if not failed else f"; {failed} DISAGREE"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
