"""Model sizes and settings at equal CPU time on MOSES: held-out loss, IWAE bound and FCD against CPU-minutes.

    # one process per setting (they may run side by side; CPU-minutes are each process's own)
    python scripts/bench_study.py run --name small --preset small --stretches 15,15,15 --out STUDY
    python scripts/bench_study.py run --name large --set enc_hidden=256 --set dec_hidden=384 ... --out STUDY
    # the table and the plot
    python scripts/bench_study.py report --out STUDY --png docs/study_moses.png

Each setting trains on the MOSES training split (../shared/data/moses_train.csv.gz) in stretches of
``--stretches`` wall-minutes, resuming exactly between them (``molvae train --resume``). After each
stretch it records, at the CPU-minutes the run has spent so far: the held-out loss (validation split),
the held-out ELBO and IWAE bound (``likelihood.json``, k=32, 1,000 validation molecules), greedy exact
reconstruction, and the MOSES metrics of 10,000 prior samples against 10,000 random MOSES test molecules
(FCD/Test, SNN, Frag, Scaf, IntDiv, Filters, novelty against the run's training split). One torch thread.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

STUDY_DEFAULTS = {"val_fraction": 0.005, "kl_warmup_epochs": 0.1, "final_eval_samples": 0,
                  "compact_checkpoint": True, "checkpoint_every": 250}


def _test_subset(n: int, seed: int = 0) -> list[str]:
    import numpy as np

    with gzip.open(SHARED / "moses_test.csv.gz", "rt") as fh:
        rows = [line.strip().split(",")[0] for line in fh][1:]
    pick = np.random.default_rng(seed).permutation(len(rows))[:n]
    return [rows[i] for i in sorted(pick)]


def score_point(run_dir: Path, n_samples: int, test: list[str], seed: int = 0) -> dict:
    """Held-out figures of the run's current best weights, and the MOSES metrics of its prior samples."""
    from molvae import MolVAE
    from molvae.metrics import evaluate

    model = MolVAE.load(run_dir)
    likelihood = json.loads((run_dir / "likelihood.json").read_text())
    t = time.perf_counter()
    samples = model.sample(n_samples, seed=seed, n_workers=0, progress=False)
    sample_s = time.perf_counter() - t
    metrics = evaluate(samples["smiles"].tolist(), ref=test, train=model.train_hashes, n_jobs=1, progress=False)
    return {"heldout_elbo": likelihood["elbo"], "heldout_iwae": likelihood["iwae"], "sample_seconds": sample_s,
            **{k: metrics.get(k) for k in ("validity", "unique@10k", "FCD/Test", "SNN/Test", "Frag/Test",
                                           "Scaf/Test", "IntDiv", "Filters", "novelty")}}


def run(args: argparse.Namespace) -> None:
    import csv

    import torch

    from molvae import MolVAE

    torch.set_num_threads(1)
    options = dict(STUDY_DEFAULTS)
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = json.loads(value) if value[:1] in "0123456789-[{tf" or value in ("true", "false") else value
    out = Path(args.out) / args.name
    points_file = out / "points.json"
    points = json.loads(points_file.read_text()) if points_file.exists() else []
    test = _test_subset(args.test_size)
    print(f"machine: {machine()}\nsetting {args.name}: preset {args.preset}, options {options}", flush=True)
    for i, minutes in enumerate(float(m) for m in args.stretches.split(",")):
        if i < len(points):
            continue  # this stretch was done in an earlier call
        resume = (out / "checkpoint.pt").exists()
        MolVAE.fit(str(SHARED / "moses_train.csv.gz"), out=out, preset=args.preset, resume=resume,
                   progress=False, **{**options, "max_minutes": minutes})
        with open(out / "train_log.csv") as fh:
            last = list(csv.DictReader(fh))[-1]
        point = {"stretch": i + 1, **{k: float(last[k]) for k in ("epoch", "step", "cpu_minutes", "train_minutes",
                                                                   "val_loss", "val_recon", "val_kl", "val_exact")}}
        point.update(score_point(out, args.samples, test))
        points.append(point)
        points_file.write_text(json.dumps(points, indent=2) + "\n")
        print(json.dumps(point), flush=True)


def report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for d in sorted(Path(args.out).iterdir()):
        if (d / "points.json").exists():
            runs[d.name] = json.loads((d / "points.json").read_text())
            cfg = json.loads((d / "config.json").read_text())
            params = cfg_params(cfg, d)
            runs[d.name] = {"points": runs[d.name], "params": params, "config": cfg}
    print("| setting | params | CPU-min | epoch | val loss | held-out IWAE | val exact | FCD/Test | SNN | "
          "Frag | Scaf | IntDiv | Filters | novelty |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        for p in r["points"]:
            print(f"| {name} | {r['params'] / 1e6:.2f}M | {p['cpu_minutes']:.1f} | {p['epoch']:.3f} | "
                  f"{p['val_loss']:.2f} | {p['heldout_iwae']:.2f} | {p['val_exact']:.3f} | {p['FCD/Test']:.2f} | "
                  f"{p['SNN/Test']:.3f} | {p['Frag/Test']:.3f} | {p['Scaf/Test']:.3f} | {p['IntDiv']:.3f} | "
                  f"{p['Filters']:.3f} | {p['novelty']:.3f} |")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, r in runs.items():
        cpu = [p["cpu_minutes"] for p in r["points"]]
        label = f"{name} ({r['params'] / 1e6:.1f}M)"
        axes[0].plot(cpu, [p["val_loss"] for p in r["points"]], "o-", label=label)
        axes[1].plot(cpu, [-p["heldout_iwae"] for p in r["points"]], "o-", label=label)
        axes[2].plot(cpu, [p["FCD/Test"] for p in r["points"]], "o-", label=label)
    for ax, title in zip(axes, ["held-out loss (nats/molecule)", "held-out -IWAE bound, k=32 (nats)",
                                "FCD/Test, 10,000 prior samples"]):
        ax.set_xlabel("CPU-minutes of training")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("MOSES: model settings at equal CPU time (one thread each)", fontsize=11)
    fig.tight_layout()
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=110)
    print(f"plot: {args.png}")


def cfg_params(cfg: dict, run_dir: Path) -> int:
    from molvae.model import VAE, ModelConfig

    vocab = json.loads((run_dir / "vocab.json").read_text())
    n_tokens = len(vocab["tokens"]) if isinstance(vocab, dict) else len(vocab)
    return sum(p.numel() for p in VAE(ModelConfig.from_dict(cfg), n_tokens).parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--name", required=True)
    r.add_argument("--preset", default="default")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--stretches", default="15,15,15", help="wall-minutes of each training stretch")
    r.add_argument("--samples", type=int, default=10_000)
    r.add_argument("--test-size", type=int, default=10_000)
    r.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--out", required=True)
    p.add_argument("--png", default="docs/study_moses.png")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
