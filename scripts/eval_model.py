"""Reconstruction and prior-sample quality of a trained model, as reported in BENCHMARKS.md.

    python scripts/eval_model.py MODEL_DIR [--heldout MODEL_DIR/val.smi] [-n 10000] [--threads 1] \
        [--prior auto|model|fitted] [--json results.json]

- exact greedy reconstruction of up to N held-out molecules (default: the run's own validation split,
  which training never saw);
- validity, uniqueness and novelty (against the training split) of N prior samples (temperature 1,
  SELFIES-repaired strings drawn again), and their acceptance rate (the share of decoded strings that
  needed no repair);
- with ``--ref``, the FCD of those samples against a reference set (e.g. held-out molecules).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--heldout", help="held-out molecules (default: MODEL/val.smi)")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--prior", default="auto", choices=["auto", "model", "fitted"],
                    help="where prior samples come from (auto: the fitted latent mixture when the model has one)")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--ref", help="also the FCD of the samples against this set (a file or a named set)")
    args = ap.parse_args()
    import pandas as pd
    import torch

    from molvae import MolVAE

    if args.threads:
        torch.set_num_threads(args.threads)
    model = MolVAE.load(args.model, device=args.device)
    heldout = Path(args.heldout or Path(args.model) / "val.smi")
    smiles = [line.split()[0] for line in heldout.read_text().splitlines() if line.strip()][: args.n]
    print(f"machine: {machine(str(model.device))}; device {model.device}")
    print(f"model: {args.model} ({model!r})")
    t = time.perf_counter()
    rec = model.reconstruct(smiles)
    t_rec = time.perf_counter() - t
    t = time.perf_counter()
    df = model.sample(args.n, seed=0, progress=False, prior=args.prior)
    t_s = time.perf_counter() - t
    valid = df["valid"].mean()
    unique = df["unique"].sum() / max(df["valid"].sum(), 1)
    novel = df.loc[df["unique"], "novel"].mean()
    acceptance = df.attrs["acceptance_rate"]
    fcd = None
    if args.ref:
        from molvae.metrics import evaluate

        fcd = evaluate(df["smiles"].tolist(), ref=args.ref, n_jobs=1, progress=False)["FCD/Test"]
    log = pd.read_csv(Path(args.model) / "train_log.csv")
    print(f"training: {len(log)} evaluations logged, {log['seconds'].sum() / 60:.1f} min")
    print(f"exact greedy reconstruction of {len(smiles)} held-out molecules ({heldout}): {rec['exact'].mean():.4f} "
          f"({t_rec:.0f} s)")
    print(f"{args.n} prior samples ({args.prior} prior): validity {valid:.4f}, uniqueness {unique:.4f}, "
          f"novelty {novel:.4f} (of unique valid; {t_s:.0f} s); acceptance rate {acceptance:.4f}"
          + (f"; FCD against {args.ref} {fcd:.3f}" if fcd is not None else ""))
    if args.json:
        import json

        args.json.write_text(json.dumps({
            "heldout": str(heldout), "n_heldout": len(smiles), "exact_reconstruction": float(rec["exact"].mean()),
            "n_samples": args.n, "prior": args.prior, "validity": float(valid), "uniqueness": float(unique),
            "novelty": float(novel), "acceptance_rate": acceptance, "fcd_ref": args.ref, "fcd": fcd,
            "reconstruct_s": t_rec, "sample_s": t_s, "machine": machine(str(model.device))}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
