"""Property-conditioned sampling (CVAE): how close are the molecules to the requested logP (and QED)?

    python scripts/bench_cvae.py [--prior normal,conditional] [--data PATH] [--epochs 8] [--n 1000]
                                 [--temperature 1,0.5] [--guidance 1,2] [--runs /tmp/molvae_bench] [--retrain]
    python scripts/bench_cvae.py --model RUN_DIR [--model RUN_DIR ...] [--fit-guide] [--steer 0,4]
                                                                         # evaluate trained models

For each ``--prior`` (normal: z ~ N(0, I) beside c; conditional: the learned p(z|c)) a VAE conditioned
on logP and QED is trained on ``--data`` (default ``data/moses_sample.smi``, 15,000 MOSES training
molecules) with ``--preset`` (default small) and the same schedule as ``bench_likelihood.py``'s plain
VAE, which is the unconditional baseline (trained on the same data; ``--no-baseline`` skips it).
Trained models are kept in ``--runs`` and reused unless ``--retrain``; ``--model`` evaluates given
model directories instead of training. For logP requested at 1..5 (QED then drawn from its training
distribution given logP) and for two two-property requests, ``--n`` latent points are sampled at each
``--temperature``, guidance weight (``--guidance``, 1 = plain conditional decoding) and steering
strength of the model's property guide (``--steer``, 0 = none; ``--fit-guide`` first fits a guide for a
given model, on ``--data`` and the model's own samples); the mean absolute error is over the valid,
unique samples. Unconditional: the plain
VAE's samples against each requested value. The settings printed are read from each model's config.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from benchenv import machine

import numpy as np

from bench_likelihood import SAMPLE, describe, train_or_load

REQUESTS = [{"logp": v} for v in (1.0, 2.0, 3.0, 4.0, 5.0)] + [{"logp": 2.0, "qed": 0.9}, {"logp": 4.0, "qed": 0.6}]


def summarize(df, targets: dict[str, float]) -> dict:
    from molvae.chem import compute_properties

    valid = df[df["valid"]]
    uniq = valid[valid["unique"]]
    props = compute_properties(uniq["smiles"].tolist(), list(targets))
    out = {"validity": float(df["valid"].mean()), "uniqueness": len(uniq) / max(len(valid), 1),
           "novelty": float(uniq["novel"].mean()) if len(uniq) else None, "n_unique": len(uniq)}
    for j, (name, t) in enumerate(targets.items()):
        out[f"{name}_values"] = [round(float(v), 3) for v in props[:, j]]
        out[f"{name}_mae"] = float(np.abs(props[:, j] - t).mean())
        out[f"{name}_mean"] = float(props[:, j].mean())
        out[f"{name}_median"] = float(np.median(props[:, j]))
    return out


def evaluate(cvae, plain, n: int, temperature: float, guidance: float = 1.0, steer: float = 0.0) -> dict:
    """Every request at one setting: the CVAE's samples and the plain VAE's against each target."""
    base_df = plain.sample(n, seed=0, temperature=temperature, progress=False) if plain is not None else None
    rows = []
    for req in REQUESTS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = cvae.sample(n, seed=0, condition=req, temperature=temperature, guidance=guidance, steer=steer,
                             progress=False)
        rows.append({"request": req, "cvae": summarize(df, req),
                     "unconditional": summarize(base_df, req) if base_df is not None else None,
                     "warnings": [str(w.message) for w in caught]})
    free = summarize(cvae.sample(n, seed=0, temperature=temperature, progress=False),
                     {"logp": float(cvae.conditions.mean[0])})
    return {"rows": rows, "cvae_unconditioned": free}


def print_table(label: str, setting: str, result: dict) -> None:
    rows, free = result["rows"], result["cvae_unconditioned"]
    print(f"\n{label}, {setting}\n\n| requested | logP MAE (CVAE) | logP MAE (unconditional VAE) | ratio "
          "| obtained logP (mean) | QED MAE (CVAE / uncond.) | validity | uniqueness | novelty |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, b = r["cvae"], r["unconditional"] or {}
        req = ", ".join(f"{k}={v:g}" for k, v in r["request"].items())
        base = b.get("logp_mae", float("nan"))
        qed = f"{c['qed_mae']:.3f} / {b.get('qed_mae', float('nan')):.3f}" if "qed_mae" in c else ""
        warn = " (warned: outside training range)" if r["warnings"] else ""
        print(f"| {req}{warn} | {c['logp_mae']:.3f} | {base:.3f} | {c['logp_mae'] / base:.2f} "
              f"| {c['logp_mean']:.2f} | {qed} | {c['validity']:.3f} | {c['uniqueness']:.3f} | {c['novelty']:.3f} |")
    grid = [r for r in rows if list(r["request"]) == ["logp"]]
    base = [r["unconditional"]["logp_mae"] for r in grid if r["unconditional"]]
    print(f"\nlogP grid 1..5: mean MAE {np.mean([r['cvae']['logp_mae'] for r in grid]):.3f} (CVAE) vs "
          f"{np.mean(base) if base else float('nan'):.3f} (unconditional); validity "
          f"{np.mean([r['cvae']['validity'] for r in grid]):.3f}, uniqueness "
          f"{np.mean([r['cvae']['uniqueness'] for r in grid]):.3f}; CVAE without a request: validity "
          f"{free['validity']:.3f}, uniqueness {free['uniqueness']:.3f}")


def plot(results: dict, path: Path) -> Path:
    """One panel per model and setting: the obtained logP of each request on the grid (violins), with
    the requested values marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(label, setting, res) for label, r in results.items() for setting, res in r["by_setting"].items()]
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False, sharey=True)
    for ax, (label, setting, res) in zip(axes.flat, panels):
        grid = [row for row in res["rows"] if list(row["request"]) == ["logp"]]
        wanted = [row["request"]["logp"] for row in grid]
        ax.violinplot([row["cvae"]["logp_values"] for row in grid], positions=wanted, widths=0.8, showmedians=True)
        ax.scatter(wanted, wanted, marker="_", s=400, color="crimson", zorder=3, label="requested")
        mae = np.mean([row["cvae"]["logp_mae"] for row in grid])
        ax.set_title(f"{Path(label).name}\n{setting}: MAE {mae:.2f}", fontsize=9)
        ax.set_xlabel("requested logP")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("logP of valid unique samples")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="normal", help="CVAE priors to train and compare: normal, conditional "
                                                       "or both, comma-separated (default normal)")
    ap.add_argument("--data", default=str(SAMPLE), help="training data (default data/moses_sample.smi)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--model", action="append", default=[], metavar="DIR",
                    help="evaluate this trained conditional model instead of training (repeatable)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unconditional VAE")
    ap.add_argument("--baseline", metavar="DIR", help="a trained unconditional VAE to use as the baseline")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--n", type=int, default=1000, help="samples per request")
    ap.add_argument("--runs", default="/tmp/molvae_bench")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (training and sampling)")
    ap.add_argument("--temperature", default="1", help="sampling temperatures, comma-separated (default 1)")
    ap.add_argument("--guidance", default="1", help="guidance weights, comma-separated (default 1: none)")
    ap.add_argument("--steer", default="0,4", help="property-guide steering strengths, comma-separated (default "
                                                   "0,4; models without a guide skip those > 0)")
    ap.add_argument("--fit-guide", action="store_true",
                    help="fit a property guide (in memory) for --model models on --data first")
    ap.add_argument("--out", default="bench_cvae.json")
    ap.add_argument("--plot", default="bench_cvae.png", help="obtained-logP violins per setting ('' = none)")
    args = ap.parse_args()
    import torch

    from molvae import MolVAE
    from molvae.data import read_smiles

    torch.set_num_threads(args.threads)
    temperatures = [float(t) for t in args.temperature.split(",")]
    guidances = [float(w) for w in args.guidance.split(",")]
    steers = [float(s) for s in args.steer.split(",")]
    priors = [p.strip() for p in args.prior.split(",") if p.strip()]
    data = Path(args.data)
    # runs on other data or presets get their own names, so a model is never reused for the wrong data
    tag = ("" if data.resolve() == SAMPLE.resolve() else "_" + data.name.split(".")[0]) + \
        ("" if args.preset == "small" else "_" + args.preset)
    print(f"machine: {machine(args.device)}; device {args.device}")
    print(f"settings: {args.n} samples per request at T={', '.join(f'{t:g}' for t in temperatures)}, "
          f"guidance {', '.join(f'{w:g}' for w in guidances)}, steer {', '.join(f'{s:g}' for s in steers)}; "
          f"MAE over valid unique samples")
    runs = Path(args.runs)
    models = {}
    if args.model:
        for d in args.model:
            models[str(d)] = MolVAE.load(d, device=args.device)
            if args.fit_guide:
                t = time.perf_counter()
                smiles = read_smiles(data)["input"].tolist()  # any format molvae reads (.smi, .csv, .gz, ...)
                summary = models[str(d)].fit_guide(smiles, progress=False)
                print(f"{d}: guide fitted on {data} and {models[str(d)].config.guide_samples} samples in "
                      f"{time.perf_counter() - t:.0f} s: {summary}")
    else:
        for prior in priors:
            name = "cvae_logp_qed" + ("" if prior == "normal" else f"_{prior}") + tag
            models[f"prior {prior}"] = train_or_load(name, runs, args.epochs, args.retrain, args.device, data=data,
                                                     preset=args.preset, conditions=["logp", "qed"], prior=prior)
    if args.baseline:
        plain = MolVAE.load(args.baseline, device=args.device)
    elif args.no_baseline:
        plain = None
    else:
        plain = train_or_load("normal" + tag, runs, args.epochs, args.retrain, args.device, data=data,
                              preset=args.preset)
    for label, model in list(models.items()) + ([("unconditional", plain)] if plain is not None else []):
        print(f"{label}: {model.path}: {describe(model)}")
    results = {}
    for label, cvae in models.items():
        if not cvae.config.n_conditions:
            raise SystemExit(f"{label}: not a conditional model")
        spec = cvae.conditions
        print(f"{label}: training logP mean %.3f std %.3f range %.2f..%.2f; QED mean %.3f std %.3f" % (
            spec.mean[0], spec.std[0], spec.low[0], spec.high[0], spec.mean[1], spec.std[1]))
        results[label] = {"path": str(cvae.path), "config": cvae.config.to_dict(), "by_setting": {}}
        for temperature in temperatures:
            for guidance in guidances:
                for steer in steers:
                    if steer > 0 and cvae.guide is None:
                        print(f"{label}: no property guide, steer {steer:g} skipped")
                        continue
                    t = time.perf_counter()
                    result = evaluate(cvae, plain, args.n, temperature, guidance, steer)
                    result["seconds"] = time.perf_counter() - t
                    setting = f"T={temperature:g} w={guidance:g} steer={steer:g}"
                    results[label]["by_setting"][setting] = result
                    print_table(label, setting, result)
    Path(args.out).write_text(json.dumps({"data": str(data), "n": args.n, "models": results}, indent=2) + "\n")
    if args.plot:
        print(f"obtained logP per request: {plot(results, Path(args.plot))}")
    print("\nsummary (logP grid 1..5, mean MAE / validity / uniqueness):")
    for label, r in results.items():
        cells = []
        for setting, res in r["by_setting"].items():
            grid = [row["cvae"] for row in res["rows"] if list(row["request"]) == ["logp"]]
            cells.append(f"{setting}: {np.mean([g['logp_mae'] for g in grid]):.3f} / "
                         f"{np.mean([g['validity'] for g in grid]):.3f} / "
                         f"{np.mean([g['uniqueness'] for g in grid]):.3f}")
        print(f"  {label}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
