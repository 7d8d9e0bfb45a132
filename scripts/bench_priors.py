"""Sample quality at no training cost: where the latent points come from, and the decoding temperature.

    python scripts/bench_priors.py MODEL_DIR --data ../shared/data/moses_train.csv.gz [--samples 10000] \
        [--components 10,50] [--temperatures 1.0,0.8] [--aggregate] [--aggregate-scales 1,1.5] [--train moses-train]

For one trained model: prior samples from N(0, I) (the model's own prior) and from a Gaussian mixture
fitted after training to the latent means of 50,000 random training molecules (ex-post density
estimation, ``MolVAE.fit_latent_prior``), each decoded at the given temperatures; MOSES metrics of
``--samples`` molecules against 10,000 random MOSES test molecules (FCD/Test, SNN, Frag, Scaf, IntDiv,
Filters, novelty against the model's training split or ``--train``, e.g. the shipped ``moses-train``
index), and the model's greedy exact reconstruction of 1,000 of its validation molecules when the
directory has its ``val.smi`` (the same for every row: the prior does not change the decoder).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--data", required=True, help="the model's training data (for the fitted mixture)")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--components", default="10", help="mixture sizes to fit, comma-separated")
    ap.add_argument("--fit-molecules", type=int, default=50_000)
    ap.add_argument("--temperatures", default="1.0,0.8")
    ap.add_argument("--out", help="JSON file for the results")
    ap.add_argument("--train", help="novelty against this set (a file or moses-train) instead of the model's "
                                    "own training hashes")
    ap.add_argument("--aggregate-scales", default="1",
                    help="with --aggregate: posterior widths times these factors (> 1 spreads past each molecule)")
    ap.add_argument("--aggregate-only", action="store_true", help="skip the N(0, I) and mixture rows")
    ap.add_argument("--aggregate", action="store_true",
                    help="also decode z from --samples training molecules' posteriors (means, and q(z|x) draws): "
                         "the quality a prior that matched the aggregate posterior could reach")
    args = ap.parse_args()

    import numpy as np
    import torch

    from bench_study import _test_subset
    from benchenv import machine
    from molvae import MolVAE
    from molvae.data import read_smiles
    from molvae.metrics import evaluate

    torch.set_num_threads(1)
    print(f"machine: {machine()}", flush=True)
    model = MolVAE.load(args.model, device="cpu")
    model.path = None  # never write the fitted mixture into the run directory
    val_file = Path(args.model) / "val.smi"
    exact = float(model.reconstruct(val_file.read_text().split()[:1000])["exact"].mean()) if val_file.exists() \
        else float("nan")
    train = args.train or model.train_hashes
    smiles = read_smiles(args.data)["input"].tolist()
    pick = np.random.default_rng(0).permutation(len(smiles))[: args.fit_molecules]
    test = _test_subset(10_000)
    rows = []
    fit_s = {}
    for components in [] if args.aggregate_only else [None] + [int(k) for k in args.components.split(",")]:
        if components is not None:
            t = time.perf_counter()
            model.fit_latent_prior([smiles[i] for i in pick], components=components, save=False)
            fit_s[components] = time.perf_counter() - t
        for temperature in (float(x) for x in args.temperatures.split(",")):
            samples = model.sample(args.samples, temperature=temperature, seed=0, n_workers=0, progress=False,
                                   prior="model" if components is None else "fitted")
            m = evaluate(samples["smiles"].tolist(), ref=test, train=train, n_jobs=1, progress=False)
            row = {"prior": "N(0, I)" if components is None else f"fitted mixture (K={components})",
                   "temperature": temperature, "val_exact": exact,
                   **{k: m.get(k) for k in ("validity", "unique@10000", "FCD/Test", "SNN/Test", "Frag/Test",
                                            "Scaf/Test", "IntDiv", "Filters", "novelty")}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.aggregate:  # the aggregate posterior: where the training molecules' posteriors put mass
        mu, logvar = model.encode_posterior([smiles[i] for i in pick[: args.samples]])
        eps = np.random.default_rng(1).standard_normal(mu.shape).astype(mu.dtype)
        widths = [(f"aggregate posterior q(z|x) of training molecules, widths x {x:g}",
                   mu + x * np.exp(0.5 * logvar) * eps) for x in map(float, args.aggregate_scales.split(","))]
        for label, z in [("posterior means of training molecules", mu)] + widths:
            decoded = model.decode(z, temperature=1.0, seed=0, n_workers=0)
            m = evaluate(decoded, ref=test, train=train, n_jobs=1, progress=False)
            row = {"prior": label, "temperature": 1.0, "val_exact": exact,
                   **{k: m.get(k) for k in ("validity", "unique@10000", "FCD/Test", "SNN/Test", "Frag/Test",
                                            "Scaf/Test", "IntDiv", "Filters", "novelty")}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"mixtures fitted to {len(pick)} latent means: " + ", ".join(f"K={k} in {s:.0f} s" for k, s in fit_s.items()))
    print("\n| prior | T | FCD/Test | SNN/Test | Frag/Test | Scaf/Test | IntDiv | Filters | novelty | val exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['prior']} | {r['temperature']:g} | {r['FCD/Test']:.3f} | {r['SNN/Test']:.3f} | "
              f"{r['Frag/Test']:.3f} | {r['Scaf/Test']:.3f} | {r['IntDiv']:.3f} | {r['Filters']:.3f} | "
              f"{r['novelty']:.3f} | {r['val_exact']:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
