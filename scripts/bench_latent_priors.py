"""Which prior to sample a trained model from: acceptance rate, FCD, novelty and uniqueness together.

    python scripts/bench_latent_priors.py moses --data ../shared/data/moses_train.csv.gz --ref moses-test
    python scripts/bench_latent_priors.py zinc250k --data ../shared/data/zinc250k.smi.gz \
        --ref models/zinc250k/val.smi --exclude models/zinc250k/val.smi

For one trained model, latent points from: N(0, I) (the model's own prior); a 10-component Gaussian
mixture over the posterior means of ``--fit-molecules`` training molecules (what the shipped models
carried before); a VampPrior-style mixture of the posteriors of 500 training molecules (the models
were not trained with a VampPrior: its components here are real molecules' posteriors, not learned
pseudo-inputs); the aggregate posterior of 10,000 training molecules; normalizing flows
(:mod:`molvae.latent_flow`) fitted to the posterior means and to draws from the posteriors. For each,
``--samples`` molecules are drawn with molvae's default repair rejection: the acceptance rate is the
share of decoded token strings that needed no SELFIES repair, and the metrics are those of the accepted
molecules against ``--ref`` (FCD, SNN, Filters), novelty against the model's training set, uniqueness.
Prints the settings, the machine, fit and sampling times and a markdown table; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRIORS = {  # name -> fit_latent_prior keywords (None: the model's own prior)
    "N(0, I)": None,
    "mixture, 10 components (means)": dict(kind="mixture", components=10),
    "VampPrior-style: 500 posteriors": dict(kind="aggregate", max_molecules=500),
    "aggregate posterior: 10,000": dict(kind="aggregate", max_molecules=10_000),
    "flow on the means": dict(kind="flow", scale=0.0),
    "flow on posterior draws": dict(kind="flow", scale=1.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a model directory or shipped name")
    ap.add_argument("--data", required=True, help="the model's training data (the priors are fitted to it)")
    ap.add_argument("--ref", default="moses-test", help="reference set: a named set or a SMILES file")
    ap.add_argument("--exclude", help="SMILES file of molecules never to fit a prior to (the held-out set, when "
                                      "--ref is drawn from the training data's source)")
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--fit-molecules", type=int, default=50_000)
    ap.add_argument("--priors", help="semicolon-separated subset of: " + "; ".join(PRIORS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="JSON file for the results")
    args = ap.parse_args()

    import numpy as np
    import torch

    from molvae import MolVAE
    from molvae.data import read_smiles
    from molvae.metrics import evaluate

    torch.set_num_threads(args.threads)
    print(f"settings: {vars(args)}\nmachine: {machine()}", flush=True)
    model = MolVAE.load(args.model, device="cpu")
    smiles = read_smiles(args.data)["input"].tolist()
    if args.exclude:
        from molvae.chem import canonicalize

        held_out = set(read_smiles(args.exclude)["input"])
        smiles = [s for s in smiles if canonicalize(s) not in held_out]
    order = np.random.default_rng(args.seed).permutation(len(smiles))
    chosen = [p.strip() for p in args.priors.split(";")] if args.priors else list(PRIORS)
    rows = {}
    for name in chosen:
        spec = PRIORS[name]
        t0 = time.perf_counter()
        if spec is not None:
            spec = dict(spec)
            take = spec.pop("max_molecules", args.fit_molecules)
            model.fit_latent_prior([smiles[i] for i in order[:take]], seed=args.seed, save=False, **spec)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        df = model.sample(args.samples, seed=args.seed, progress=False, prior="model" if spec is None else "fitted")
        sample_s = time.perf_counter() - t0
        m = evaluate(df["smiles"].tolist(), ref=args.ref, train=model.train_hashes, n_jobs=1, progress=False)
        rows[name] = {"acceptance": df.attrs["acceptance_rate"], "FCD": m["FCD/Test"], "SNN": m["SNN/Test"],
                      "Filters": m["Filters"], "novelty": m["novelty"], "uniqueness": m["unique@10000"],
                      "IntDiv": m["IntDiv"], "fit_s": fit_s, "sample_s": sample_s}
        print(name, json.dumps(rows[name]), flush=True)
    lines = ["| prior | acceptance | FCD | SNN | Filters | novelty | unique | IntDiv | fit s | sampling s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['acceptance']:.3f} | {r['FCD']:.2f} | {r['SNN']:.3f} | {r['Filters']:.3f} | "
                     f"{r['novelty']:.3f} | {r['uniqueness']:.4f} | {r['IntDiv']:.3f} | {r['fit_s']:.0f} | "
                     f"{r['sample_s']:.0f} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
