"""``molvae likelihood MODEL FILE --k 100``: per-molecule ELBO and IWAE bounds (nats), optionally the OOD score.

Writes one row per usable input molecule (``line``, ``smiles``, ``n_tokens``, ``elbo``, ``iwae``,
``recon``, and with ``--ood`` ``score``/``ood``); rows the model cannot read go to a rejects file
beside the output. The means go to stderr.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("likelihood", help="ELBO and importance-weighted (IWAE) log-likelihood bounds per molecule",
                       description="Score molecules under a model: the ELBO and the k-sample IWAE bound on "
                                   "log p(x), in nats per molecule; with --ood also the out-of-distribution score.")
    p.add_argument("model", help="model directory (a training run's --out)")
    p.add_argument("input", help="SMILES file (.smi/.csv/.tsv/.sdf, optionally .gz)")
    p.add_argument("--k", type=int, default=100, help="importance samples per molecule (default 100; 1 = ELBO)")
    p.add_argument("--ood", action="store_true", help="add the OOD score and flag (threshold from the model's ood.json)")
    p.add_argument("--smiles-column")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-elems", type=int, default=4096, help="sequences per decoder pass (default 4096)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--out", help="output file (.csv/.tsv, optionally .gz); default: CSV on stdout")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from molvae.cli._io import check_out, load_model, prepared_input, write_table
    from molvae.errors import ConfigError

    if args.k < 1:
        raise ConfigError(f"--k must be >= 1, got {args.k}")
    if args.batch_elems < 1:
        raise ConfigError(f"--batch-elems must be >= 1, got {args.batch_elems}")
    check_out(args.out)
    model = load_model(args.model, args.device)
    data = prepared_input(model, args.input, args.smiles_column, False, args.out)
    df = model.likelihood(data.smiles, k=args.k, seed=args.seed, batch_elems=args.batch_elems,
                          progress=not args.quiet)
    df.insert(0, "line", data.lines)
    print(f"{len(df)} molecules: ELBO {df['elbo'].mean():.3f}, IWAE (k={args.k}) {df['iwae'].mean():.3f} "
          f"nats per molecule (mean)", file=sys.stderr)
    if args.ood:
        ood = model.ood_score(data.smiles, seed=args.seed, progress=not args.quiet)
        df["score"], df["ood"] = ood["score"].to_numpy(), ood["ood"].to_numpy()
        print(f"OOD: {int(df['ood'].sum())} of {len(df)} above the threshold {model.ood.threshold:.3f} "
              f"(the {model.ood.quantile:g} quantile of held-out scores)", file=sys.stderr)
    write_table(df, args.out)
    return 0
