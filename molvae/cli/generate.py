"""Generation commands: ``sample``, ``encode``, ``decode``, ``reconstruct``, ``interpolate``, ``neighbours``.

Outputs are ``.smi`` or ``.csv``/``.tsv`` chosen by the file name (``-`` or no ``--out``: CSV on stdout);
summaries go to stderr so stdout stays a clean table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from molvae.cli._args import at_least, parse_condition
from molvae.cli._io import check_out, load_model, prepared_input, write_table

_write, _prepared = write_table, prepared_input  # the old private names (cli.likelihood used them)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory (a training run's --out)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--out", help="output file (.smi, .csv, .tsv, optionally .gz); default: CSV on stdout")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample molecules from the prior")
    _model_args(p)
    p.add_argument("-n", "--num", type=int, default=1000, help="number of molecules (default 1000)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy, >0 multinomial (default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--valid-only", action="store_true", help="write only valid molecules")
    p.add_argument("--evaluate", action="store_true", help="also compute the distribution metrics (needs --ref)")
    p.add_argument("--ref", help="reference set for --evaluate: a file or moses-test / moses-test-scaffolds")
    p.add_argument("--train", help="training set for novelty in --evaluate (default: the model's own)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--condition", metavar="NAME=VALUE,...",
                   help="a conditional model: the property values to sample at, e.g. logp=3.0,qed=0.8")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="a conditional model: > 1 strengthens the condition's pull on each decoding step (default 1)")
    p.add_argument("--steer", type=float, default=None,
                   help="a conditional model with a property guide: how strongly decoding is steered toward "
                        "the --condition values (default: the model's guide_strength; 0 = off)")
    p.add_argument("--prior", choices=["auto", "model", "fitted"], default="auto",
                   help="latent points from the mixture fitted after training (fitted; auto = when the model "
                        "has one) or from the model's own prior (model)")
    p.add_argument("--keep-repaired", action="store_true",
                   help="keep token strings the SELFIES decoder had to repair (marked in a 'repaired' column) "
                        "instead of drawing again until -n are accepted (the default)")
    p.set_defaults(func=run_sample)

    p = sub.add_parser("fit-prior", help="fit a latent prior (flow or mixture) to molecules' posteriors (better samples)")
    p.add_argument("model", help="model directory (a training run's --out); the prior is saved there")
    p.add_argument("input", help="SMILES file: the training molecules, or a random sample of them")
    p.add_argument("--components", type=int, default=10, help="Gaussian components (default 10)")
    p.add_argument("--kind", choices=["mixture", "aggregate", "flow"], default="mixture",
                   help="mixture: a Gaussian mixture over the latent means; aggregate: the molecules' "
                        "posteriors themselves, one component each (use --max-molecules 10000 or so); flow: "
                        "a normalizing flow trained on draws from the posteriors (a few CPU-minutes)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="aggregate and flow: the posteriors' widths times this, in (0, 1] (flow: 0 = the "
                        "means only; default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--max-molecules", type=int, default=50000, help="use at most this many, at random (default 50000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.set_defaults(func=run_fit_prior)

    p = sub.add_parser("encode", help="encode molecules to latent means")
    _model_args(p)
    p.add_argument("input", help="SMILES file")
    p.add_argument("--smiles-column")
    p.add_argument("--skip-unknown", action="store_true", help="drop tokens the model never saw instead of rejecting")
    p.set_defaults(func=run_encode)

    p = sub.add_parser("decode", help="decode latent points (a .npy array or a CSV with z0..zN columns)")
    _model_args(p)
    p.add_argument("input", help=".npy (n, latent_dim) or .csv with columns z0, z1, ...")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_decode)

    p = sub.add_parser("reconstruct", help="encode then decode molecules; report exact matches")
    _model_args(p)
    p.add_argument("input", help="SMILES file")
    p.add_argument("--smiles-column")
    p.set_defaults(func=run_reconstruct)

    p = sub.add_parser("interpolate", help="decode the latent path between two molecules")
    _model_args(p)
    p.add_argument("start", help="SMILES")
    p.add_argument("end", help="SMILES")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--method", choices=["slerp", "linear"], default="slerp")
    p.set_defaults(func=run_interpolate)

    p = sub.add_parser("neighbours", help="molecules decoded around a molecule in latent space")
    _model_args(p)
    p.add_argument("smiles", help="SMILES")
    p.add_argument("-n", "--num", type=int, default=50)
    p.add_argument("--radius", type=float, default=0.5, help="latent L2 radius (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_neighbours)


def run_fit_prior(args: argparse.Namespace) -> int:
    import numpy as np

    from molvae.data import read_smiles
    from molvae.errors import ConfigError

    if args.components <= 0 or args.max_molecules <= 0:
        raise ConfigError("--components and --max-molecules must be positive")
    if not (0.0 < args.scale <= 1.0 or (args.kind == "flow" and args.scale == 0.0)):
        raise ConfigError(f"--scale must be in (0, 1] (flow: [0, 1]), got {args.scale}")
    model = load_model(args.model, args.device)
    if model.path is None or not Path(args.model).is_dir():
        raise ConfigError(f"{args.model}: fit-prior writes into a model directory; give the directory")
    smiles = read_smiles(args.input)["input"].tolist()
    if len(smiles) > args.max_molecules:
        pick = np.random.default_rng(args.seed).permutation(len(smiles))[:args.max_molecules]
        smiles = [smiles[i] for i in sorted(pick)]
    prior = model.fit_latent_prior(smiles, components=args.components, seed=args.seed, kind=args.kind,
                                   scale=args.scale, progress=not args.quiet)
    what = "a flow" if args.kind == "flow" else f"{len(prior.weights)} components"
    print(f"latent prior ({args.kind}): {what} fitted to {prior.n_fitted} molecules' posteriors, saved in "
          f"{args.model}; molvae sample uses it (--prior model for the model's own)", file=sys.stderr)
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from molvae.errors import ConfigError

    if args.num <= 0:
        raise ConfigError(f"-n must be positive, got {args.num}")
    at_least(args.temperature, "--temperature", 0)
    at_least(args.guidance, "--guidance", 0)
    at_least(args.batch_size, "--batch-size", 1)
    if args.steer is not None:
        at_least(args.steer, "--steer", 0)
    check_out(args.out)
    if args.evaluate and not args.ref:
        raise ConfigError("--evaluate needs --ref (a file, moses-test or moses-test-scaffolds)")
    condition = parse_condition(args.condition) if args.condition else None
    model = load_model(args.model, args.device)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = model.sample(args.num, temperature=args.temperature, seed=args.seed, batch_size=args.batch_size,
                          progress=not args.quiet, condition=condition, guidance=args.guidance,
                          steer=args.steer, prior=args.prior, keep_repaired=args.keep_repaired)
    for w in caught:
        print(f"molvae sample: warning: {w.message}", file=sys.stderr)
    n_valid = int(df["valid"].sum())
    kept = f", {int(df['repaired'].sum())} repaired kept" if args.keep_repaired else ""
    print(f"{len(df)} sampled: acceptance {df.attrs['acceptance_rate']:.4f} of {df.attrs['n_decoded']} decoded "
          f"(SELFIES-repaired strings {'kept' if args.keep_repaired else 'redrawn'}{kept}), validity "
          f"{n_valid / len(df):.4f}, uniqueness {df['unique'].sum() / max(n_valid, 1):.4f}, novelty "
          f"{df['novel'][df['unique']].mean():.4f} (of unique valid)", file=sys.stderr)
    out_df = df[df["valid"]] if args.valid_only else df
    write_table(out_df.drop(columns=["selfies"]), args.out)
    if args.evaluate:
        from molvae.metrics import evaluate, format_table

        train = args.train
        metrics = evaluate(df["smiles"].tolist(), ref=args.ref, train=train, progress=not args.quiet)
        print(format_table(metrics), file=sys.stderr)
    return 0


def run_encode(args: argparse.Namespace) -> int:
    import pandas as pd

    check_out(args.out)
    model = load_model(args.model, args.device)
    data = prepared_input(model, args.input, args.smiles_column, args.skip_unknown, args.out)
    z = model.encode(data.smiles, skip_unknown=args.skip_unknown)
    if args.out and args.out.endswith(".npy"):
        import numpy as np

        np.save(args.out, z)
        print(f"wrote latent means {z.shape} to {args.out}", file=sys.stderr)
        return 0
    df = pd.DataFrame({"line": data.lines, "smiles": data.smiles})
    df = pd.concat([df, pd.DataFrame(z, columns=[f"z{i}" for i in range(z.shape[1])])], axis=1)
    write_table(df, args.out)
    return 0


def _read_latents(path: str, latent_dim: int):
    import numpy as np
    import pandas as pd

    from molvae.errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: file not found")
    if p.suffix == ".npy":
        try:
            z = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path}: not a numeric .npy array ({exc})") from None
    else:
        try:
            df = pd.read_csv(p)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: file is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a CSV table of latent points ({str(exc).splitlines()[0]})") from None
        cols = [f"z{i}" for i in range(latent_dim)]
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing latent column {missing[0]!r} (expected z0..z{latent_dim - 1})")
        z = df[cols].to_numpy(dtype=np.float32)
    if z.ndim != 2 or z.shape[1] != latent_dim or len(z) == 0:
        raise DataError(f"{path}: expected an array of shape (n, {latent_dim}), got {z.shape}")
    if not np.isfinite(z).all():
        bad = int(np.flatnonzero(~np.isfinite(z).all(axis=1))[0])
        raise DataError(f"{path}: row {bad + 1} has a non-finite value")
    return z


def run_decode(args: argparse.Namespace) -> int:
    at_least(args.temperature, "--temperature", 0)
    check_out(args.out)
    model = load_model(args.model, args.device)
    z = _read_latents(args.input, model.latent_dim)
    df = model.decode(z, temperature=args.temperature, seed=args.seed, as_frame=True)
    df.insert(1, "valid", df["smiles"].notna())
    write_table(df.drop(columns=["selfies"]), args.out)
    if df["repaired"].any():
        print(f"{int(df['repaired'].sum())} of {len(df)} points decode to a token string the SELFIES decoder "
              "had to repair (column 'repaired'): the model would not have written those molecules as they are",
              file=sys.stderr)
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    check_out(args.out)
    model = load_model(args.model, args.device)
    data = prepared_input(model, args.input, args.smiles_column, False, args.out)
    df = model.reconstruct(data.smiles)
    df.insert(0, "line", data.lines)
    print(f"exact reconstruction: {df['exact'].mean():.4f} of {len(df)}", file=sys.stderr)
    write_table(df, args.out)
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    at_least(args.steps, "--steps", 2)
    check_out(args.out)
    model = load_model(args.model, args.device)
    write_table(model.interpolate(args.start, args.end, steps=args.steps, method=args.method), args.out)
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    at_least(args.num, "-n", 1)
    at_least(args.radius, "--radius", 0)
    check_out(args.out)
    model = load_model(args.model, args.device)
    write_table(model.neighbours(args.smiles, n=args.num, radius=args.radius, seed=args.seed), args.out)
    return 0
