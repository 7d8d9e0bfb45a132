"""Regenerate data/moses_sample.smi: 15,000 molecules drawn with a fixed seed from the MOSES train split.

    python scripts/make_sample.py [--source ../shared/data/moses_train.csv.gz] [--out data/moses_sample.smi]

Without a local copy of the split, pass ``--source moses-train`` to use molvae's download cache
(``molvae data get moses``). The draw is ``numpy.random.default_rng(SEED).choice(n, N, replace=False)``,
written in the split's own order, one SMILES per line, no header. Running it again gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

N = 15_000
SEED = 20_240_601
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(ROOT.parent / "shared" / "data" / "moses_train.csv.gz"),
                    help="MOSES train split (CSV with a SMILES column), or the dataset name moses-train")
    ap.add_argument("--out", default=str(ROOT / "data" / "moses_sample.smi"))
    ap.add_argument("-n", type=int, default=N)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()

    source = args.source
    if not Path(source).exists():
        from molvae.data import named_dataset

        source = named_dataset(source)
    smiles = pd.read_csv(source, usecols=["SMILES"])["SMILES"].tolist()
    idx = np.sort(np.random.default_rng(args.seed).choice(len(smiles), size=args.n, replace=False))
    text = "".join(f"{smiles[i]}\n" for i in idx)
    Path(args.out).write_text(text)
    print(f"source: {source} ({len(smiles):,} rows); seed {args.seed}; wrote {args.n:,} SMILES to {args.out} "
          f"({len(text.encode()):,} bytes, sha256 {hashlib.sha256(text.encode()).hexdigest()})")


if __name__ == "__main__":
    main()
