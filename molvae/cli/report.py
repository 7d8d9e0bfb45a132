"""``molvae report``: figures (PNG) and an index.html for a training run, a file of generated molecules
or an interpolation."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write PNG figures and an index.html for a run, generated molecules or an interpolation",
        description="RUN_OR_FILE is a training run / model directory (training curves, and molecules sampled "
                    "from its model), a file of generated SMILES, or an interpolation CSV (step,t,smiles). "
                    "Figures: property distributions against --ref, a grid of molecules, training curves, a "
                    "PCA of latent means (needs a model), an interpolation strip; with --ref or --train also "
                    "the metrics table.",
    )
    p.add_argument("source", metavar="RUN_OR_FILE", help="run directory, generated SMILES file or interpolation CSV")
    p.add_argument("--out", required=True, help="output folder (index.html and the PNGs)")
    p.add_argument("--ref", help="reference set: a file or moses-test / moses-test-scaffolds")
    p.add_argument("--model", help="model directory (for the latent PCA and the interpolation)")
    p.add_argument("--train", help="training set for novelty in the metrics: a file or moses-train")
    p.add_argument("--n-sample", type=int, default=2000, help="molecules to sample from a run's model (default 2000)")
    p.add_argument("--color-by", default="logp", help="property colouring the latent PCA (default logp)")
    p.add_argument("--n-jobs", type=int, help="worker processes for the metrics (default: all CPUs)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from molvae.errors import ConfigError
    from molvae.report import write_report

    if args.n_sample < 1:
        raise ConfigError(f"--n-sample must be at least 1, got {args.n_sample}")
    index = write_report(args.source, args.out, ref=args.ref, model=args.model, train=args.train,
                         n_sample=args.n_sample, color_by=args.color_by, n_jobs=args.n_jobs, device=args.device,
                         progress=not args.quiet)
    pngs = sorted(p.name for p in index.parent.glob("*.png"))
    print(f"wrote {index} ({', '.join(pngs) if pngs else 'no figures'})", file=sys.stderr)
    return 0
