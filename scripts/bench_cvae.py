"""Property-conditioned sampling (CVAE): how close are the molecules to the requested logP (and QED)?

    python scripts/bench_cvae.py [--epochs 8] [--n 1000] [--runs /tmp/molvae_bench] [--retrain]

A ``small``-preset VAE conditioned on logP and QED is trained on ``data/moses_sample.smi`` (15,000
MOSES training molecules) with the same schedule as ``bench_likelihood.py``'s plain VAE, which is
the unconditional baseline (reused from ``--runs/normal`` when present). For logP requested at 1..5
(QED then drawn from its training distribution given logP) and for two two-property requests,
``--n`` latent points are sampled at ``--temperature`` (default 1); the mean absolute error is over the valid,
unique samples. Unconditional: the plain VAE's samples against each requested value.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from bench_likelihood import train_or_load


def summarize(df, targets: dict[str, float]) -> dict:
    from molvae.chem import compute_properties

    valid = df[df["valid"]]
    uniq = valid[valid["unique"]]
    props = compute_properties(uniq["smiles"].tolist(), list(targets))
    out = {"validity": float(df["valid"].mean()), "uniqueness": len(uniq) / max(len(valid), 1),
           "novelty": float(uniq["novel"].mean()) if len(uniq) else None, "n_unique": len(uniq)}
    for j, (name, t) in enumerate(targets.items()):
        out[f"{name}_mae"] = float(np.abs(props[:, j] - t).mean())
        out[f"{name}_mean"] = float(props[:, j].mean())
        out[f"{name}_median"] = float(np.median(props[:, j]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--n", type=int, default=1000, help="samples per request")
    ap.add_argument("--runs", default="/tmp/molvae_bench")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (training and sampling)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    ap.add_argument("--out", default="bench_cvae.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {args.threads}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    print(f"settings: small preset, data/moses_sample.smi, {args.epochs} epochs, lr 2e-3, beta 0.5; "
          f"{args.n} samples per request at T={args.temperature:g}; MAE over valid unique samples")
    runs = Path(args.runs)
    cvae = train_or_load("cvae_logp_qed", runs, args.epochs, args.retrain, args.device, conditions=["logp", "qed"])
    plain = train_or_load("normal", runs, args.epochs, args.retrain, args.device)
    spec = cvae.conditions
    print("training logP mean %.3f std %.3f range %.2f..%.2f; QED mean %.3f std %.3f" % (
        spec.mean[0], spec.std[0], spec.low[0], spec.high[0], spec.mean[1], spec.std[1]))

    t = time.perf_counter()
    base_df = plain.sample(args.n, seed=0, temperature=args.temperature, progress=False)
    requests = [{"logp": v} for v in (1.0, 2.0, 3.0, 4.0, 5.0)] + [{"logp": 2.0, "qed": 0.9},
                                                                    {"logp": 4.0, "qed": 0.6}]
    rows = []
    for req in requests:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = cvae.sample(args.n, seed=0, condition=req, temperature=args.temperature, progress=False)
        cond = summarize(df, req)
        base = summarize(base_df, req)
        rows.append({"request": req, "cvae": cond, "unconditional": base,
                     "warnings": [str(w.message) for w in caught]})
        print(json.dumps(rows[-1]))
    free = summarize(cvae.sample(args.n, seed=0, temperature=args.temperature, progress=False), {"logp": float(spec.mean[0])})
    seconds = time.perf_counter() - t
    Path(args.out).write_text(json.dumps({"rows": rows, "cvae_unconditioned": free, "seconds": seconds}, indent=2))

    print("\n| requested | logP MAE (CVAE) | logP MAE (unconditional VAE) | ratio | obtained logP (mean) "
          "| QED MAE (CVAE / uncond.) | validity | uniqueness | novelty |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, b = r["cvae"], r["unconditional"]
        req = ", ".join(f"{k}={v:g}" for k, v in r["request"].items())
        qed = f"{c['qed_mae']:.3f} / {b['qed_mae']:.3f}" if "qed_mae" in c else ""
        warn = " (warned: outside training range)" if r["warnings"] else ""
        print(f"| {req}{warn} | {c['logp_mae']:.3f} | {b['logp_mae']:.3f} | {c['logp_mae'] / b['logp_mae']:.2f} "
              f"| {c['logp_mean']:.2f} | {qed} | {c['validity']:.3f} | {c['uniqueness']:.3f} | {c['novelty']:.3f} |")
    grid = [r for r in rows if list(r["request"]) == ["logp"]]
    print(f"\nlogP grid 1..5: mean MAE {np.mean([r['cvae']['logp_mae'] for r in grid]):.3f} (CVAE) vs "
          f"{np.mean([r['unconditional']['logp_mae'] for r in grid]):.3f} (unconditional); CVAE without a "
          f"request: validity {free['validity']:.3f}, uniqueness {free['uniqueness']:.3f}; sampling {seconds:.0f} s")


if __name__ == "__main__":
    main()
