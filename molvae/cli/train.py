"""``molvae train DATA --out RUN_DIR``: train a model; the run directory is the model directory."""

from __future__ import annotations

import argparse
import sys

# CLI flag -> ModelConfig field, for the options most people set (any field: --set key=value).
_CONFIG_FLAGS = {
    "epochs": int, "batch_size": int, "lr": float, "latent_dim": int, "max_len": int, "beta": float,
    "kl_schedule": str, "free_bits": float, "word_dropout": float, "seed": int, "val_fraction": float,
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a VAE on a SMILES file",
                       description="Train a SELFIES VAE. Options override --preset, then --config, in that order.")
    p.add_argument("data", help="SMILES source: .smi/.txt/.csv/.tsv/.sdf, optionally .gz")
    p.add_argument("--out", required=True, help="run directory (holds the model, logs, checkpoints)")
    p.add_argument("--config", help="TOML/YAML/JSON file of ModelConfig keys (and optionally preset = NAME)")
    p.add_argument("--preset", help="starting config: default (MOSES VAE size), small, tiny")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--smiles-column", help="column of a .csv/.tsv holding SMILES (default: found by name)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--from", dest="init", metavar="MODEL",
                   help="fine-tune: start from a shipped model (zinc250k, moses) or a model directory")
    p.add_argument("--extend-vocab", action="store_true",
                   help="with --from: add tokens the model lacks instead of rejecting their molecules")
    p.add_argument("--no-stereo", dest="stereo", action="store_false", default=None, help="strip stereochemistry")
    p.add_argument("--largest-fragment", action="store_true", default=None, help="keep only the largest fragment")
    for field, kind in _CONFIG_FLAGS.items():
        p.add_argument("--" + field.replace("_", "-"), type=kind, dest=field, metavar=field.upper())
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set any ModelConfig field, e.g. --set dec_layers=2 (repeatable)")
    p.add_argument("--condition", dest="conditions", metavar="PROP,...",
                   help="train a conditional VAE on RDKit properties: logp, qed, sa, mw, tpsa, hbd, hba, ...")
    p.add_argument("--condition-columns", metavar="COL,...",
                   help="train a conditional VAE on numeric columns of the .csv/.tsv data")
    p.add_argument("--prior", choices=["normal", "vampprior", "conditional"],
                   help="latent prior (default: normal); conditional: learned p(z|c), needs --condition")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from molvae.api import MolVAE
    from molvae.cli._args import parse_key_values

    if args.threads:
        torch.set_num_threads(args.threads)
    options = {f: getattr(args, f) for f in _CONFIG_FLAGS}
    options.update(stereo=args.stereo, largest_fragment=args.largest_fragment, conditions=args.conditions,
                   condition_columns=args.condition_columns, prior=args.prior)
    options.update(parse_key_values(args.set, "--set"))
    if args.extend_vocab and not args.init:
        print("molvae train: --extend-vocab needs --from MODEL", file=sys.stderr)
        return 2
    if args.resume and (args.config or args.preset):
        print("molvae train: note: --resume uses the run's saved config; --config/--preset are ignored",
              file=sys.stderr)
    try:
        model = MolVAE.fit(args.data, out=args.out, config=args.config, preset=args.preset, device=args.device,
                           resume=args.resume, progress=not args.quiet, smiles_column=args.smiles_column,
                           init=args.init, extend_vocab=args.extend_vocab, **options)
    except KeyboardInterrupt:
        print(f"molvae train: interrupted; checkpoint saved, continue with: molvae train {args.data} "
              f"--out {args.out} --resume", file=sys.stderr)
        return 130
    last = model.history[-1] if model.history else {}
    print(f"model saved in {args.out} (epochs {len(model.history)}, val loss {last.get('val_loss', float('nan')):.3f}, "
          f"val exact reconstruction {last.get('val_exact', float('nan')):.3f})")
    return 0
