"""``molvae optimize``: search a model's latent space for molecules that score well, under a budget.

    molvae optimize runs/zinc --objective qed --budget 1000 --out runs/qed
    molvae optimize runs/zinc --objective median1 --budget 10000 --storage postgresql://u@db/studies \\
        --study median1 --worker --out runs/median1-$(hostname)      # on as many machines as you like
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimize", help="optimize molecules in latent space under an oracle budget",
        description="Search the latent space of a trained model for molecules that maximize an objective. "
                    "Every new molecule scored is one oracle call; the study (and its call log) lives in "
                    "an RDB storage: sqlite:///OUT/study.db unless --storage is given.",
    )
    p.add_argument("model", nargs="?", help="model directory (a training run's --out)")
    p.add_argument("--objective", action="append", metavar="SPEC",
                   help="objective to maximize: a name (see --list-objectives), similarity:<SMILES>, "
                        "smarts:<pattern>, sum:qed=0.7,logp=0.3, path/to/file.py:function; "
                        "repeat for several objectives (method nsga2)")
    p.add_argument("--budget", type=int, help="oracle calls for the whole study, all workers together "
                                              "(default 1000; with --resume the stored budget)")
    from molvae.optimize.methods import DEFAULT_METHOD, METHODS

    p.add_argument("--method", choices=METHODS, default=None, help=f"search strategy (default {DEFAULT_METHOD}; "
                                                                   "nsga2 for several objectives)")
    p.add_argument("--seeds", metavar="FILE", help="starting molecules (.smi/.csv/.sdf): scored first, the search "
                                                    "starts from the best")
    p.add_argument("--constraint", action="append", default=[], metavar="SPEC",
                   help="e.g. 'similarity>=0.4' (to the first seed), 'similarity>=0.4:<SMILES>', 'sa<=4.5', "
                        "'mw=200..500', 'alerts'; repeatable. Violations are logged with the reason, not charged")
    p.add_argument("--storage", metavar="URL", help="SQLAlchemy URL of the study, e.g. postgresql://user@host/db")
    p.add_argument("--study", metavar="NAME", default="molvae", help="study name in the storage (default molvae)")
    p.add_argument("--worker", action="store_true", help="join the study if it exists (other workers may run it)")
    p.add_argument("--resume", action="store_true", help="continue an existing study without re-charging "
                                                         "molecules already scored")
    p.add_argument("--out", metavar="DIR", help="run directory: calls.csv, best.csv, summary.json, plots")
    p.add_argument("--n-decode", type=int, default=1, help="molecules decoded per latent point: the greedy one, "
                                                           "then sampled ones (default 1)")
    p.add_argument("--temperature", type=float, default=1.0, help="temperature of the extra decodings")
    p.add_argument("--bound", type=float, default=3.0, help="latent box |z_i| <= BOUND (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=3000, help="stop after this many latent points without "
                                                              "a new molecule")
    p.add_argument("--max-points", type=int, help="stop after this many latent points (this worker)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy option, e.g. population=200 (values parsed as JSON)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--list-objectives", action="store_true", help="list objective names and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _options(items: list[str]) -> dict:
    from molvae.cli._args import parse_key_values

    return parse_key_values(items, "--option")


def run(args: argparse.Namespace) -> int:
    from molvae.errors import ConfigError

    if args.list_objectives:
        from molvae.objectives import describe_objectives

        for name, text in describe_objectives().items():
            print(f"{name:28s} {text}")
        return 0
    if not args.model:
        raise ConfigError("missing MODEL (a model directory)")
    if not args.objective:
        raise ConfigError("missing --objective (see --list-objectives)")
    if not args.out:
        raise ConfigError("missing --out DIR (the run directory)")
    if args.budget is not None and args.budget < 1:
        raise ConfigError(f"--budget must be a positive number of oracle calls, got {args.budget}")
    from molvae.optimize.methods import DEFAULT_METHOD

    method = args.method or ("nsga2" if len(args.objective) > 1 else DEFAULT_METHOD)
    options = _options(args.option)
    from molvae.objectives import get_objective

    for spec in args.objective:  # a typo fails before the model is loaded
        get_objective(spec)

    from molvae.api import MolVAE
    from molvae.optimize import optimize

    model = MolVAE.load(args.model, device=args.device)
    budget = args.budget if args.budget is not None else (None if args.resume else 1000)
    result = optimize(
        model, args.objective if len(args.objective) > 1 else args.objective[0], budget=budget, method=method,
        seeds=args.seeds, constraints=args.constraint, storage=args.storage, study_name=args.study,
        resume=args.resume, worker=args.worker, out=args.out, n_decode=args.n_decode,
        temperature=args.temperature, bound=args.bound, seed=args.seed, patience=args.patience,
        max_points=args.max_points, options=options, progress=not args.quiet,
    )
    s = result.stats
    print(f"{result.study}: {int(result.df['call'].notna().sum())}/{result.budget} calls "
          f"({s['calls_this_worker']} by this worker), stopped: {s['stopped']}; "
          f"{s['wall_s']:.1f} s wall, {s['oracle_s']:.1f} s in the objective; results in {args.out}",
          file=sys.stderr)
    best = result.best(10)
    best[["call", "smiles", "score"] + [c for c in result.objectives if c in best.columns and c != "score"]] \
        .to_csv(sys.stdout, index=False)
    return 0
