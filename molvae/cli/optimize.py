"""``molvae optimize``: search a model's latent space for molecules that score well, under a budget.

    molvae optimize runs/zinc --objective qed --budget 1000 --out runs/qed
    molvae optimize runs/zinc --objective median1 --budget 10000 --storage postgresql://u@db/studies \\
        --study median1 --worker --out runs/median1-$(hostname)      # on as many machines as you like
    molvae optimize zinc250k --objective lab:pIC50 --budget 960 --ask 96 --out runs/lab   # a lab's batch
    molvae optimize --tell runs/lab measured.csv                     # its scores; then --ask again
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
    p.add_argument("model", nargs="?", help="model directory (a training run's --out) or a shipped model's name")
    p.add_argument("--config", metavar="RUN.toml", help="a TOML run file stating model, objectives (weights, "
                                                        "directions, transforms), constraints, budget and method; "
                                                        "options given here override it")
    p.add_argument("--objective", action="append", metavar="SPEC",
                   help="objective to maximize: a name (see --list-objectives), similarity:<SMILES>, "
                        "smarts:<pattern>, sum:qed=0.7,logp=0.3, path/to/file.py:function, 'exec:CMD' (a program "
                        "reading SMILES on stdin, printing one score per line); add ':min' to minimize or a "
                        "transform such as ':sigmoid(LOW,HIGH)', ':double_sigmoid(LOW,HIGH)'; "
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
    p.add_argument("--study", metavar="NAME", help="study name in the storage (default molvae)")
    p.add_argument("--worker", action="store_true", help="join the study if it exists (other workers may run it)")
    p.add_argument("--resume", action="store_true", help="continue an existing study without re-charging "
                                                         "molecules already scored")
    p.add_argument("--out", metavar="DIR", help="run directory: calls.csv, best.csv, summary.json, plots")
    p.add_argument("--n-decode", type=int, help="molecules decoded per latent point: the greedy one, "
                                                           "then sampled ones (default 1)")
    p.add_argument("--temperature", type=float, help="temperature of the extra decodings (default 1)")
    p.add_argument("--bound", type=float, help="latent box |z_i| <= BOUND (default 3)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--patience", type=int, help="stop after this many latent points without "
                                                              "a new molecule (default 3000)")
    p.add_argument("--max-points", type=int, help="stop after this many latent points (this worker)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy option, e.g. population=200 (values parsed as JSON)")
    p.add_argument("--oracle-workers", type=int, metavar="N",
                   help="score each batch in N processes (slow objectives such as docking; default 1)")
    p.add_argument("--oracle-timeout", type=float, metavar="SECONDS",
                   help="time an exec: program may take for one batch (default 600)")
    p.add_argument("--oracle-batch", type=int, metavar="N",
                   help="molecules scored per batch, the batch an exec: program receives (default 32)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--ask", type=int, metavar="N", help="write the next N proposed molecules to OUT/ask_NNN.csv "
                                                        "for scoring outside molvae (objective lab:NAME); they "
                                                        "are charged when told")
    p.add_argument("--tell", nargs=2, metavar=("DIR", "SCORES"), help="record measured scores (a CSV with a smiles "
                                                                      "column and a score column) in the ask/tell "
                                                                      "study in DIR")
    p.add_argument("--list-objectives", action="store_true", help="list objective names and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _options(items: list[str]) -> dict:
    from molvae.cli._args import parse_key_values

    return parse_key_values(items, "--option")


_FLAGS = {  # optimize() keyword -> (attribute of args, default when neither the flag nor a run file sets it)
    "budget": ("budget", None), "method": ("method", None), "seeds": ("seeds", None), "storage": ("storage", None),
    "study_name": ("study", "molvae"), "out": ("out", None), "n_decode": ("n_decode", 1),
    "temperature": ("temperature", 1.0), "bound": ("bound", 3.0), "seed": ("seed", 0),
    "patience": ("patience", 3000), "max_points": ("max_points", None), "oracle_workers": ("oracle_workers", 1),
    "oracle_timeout": ("oracle_timeout", None), "oracle_batch": ("oracle_batch", 32),
}


def _settings(args: argparse.Namespace) -> dict:
    """optimize()'s keyword arguments: the run file's (``--config``), then the flags given here."""
    from molvae.optimize.runfile import read_run_file

    kwargs = read_run_file(args.config) if args.config else {}
    for key, (attr, default) in _FLAGS.items():
        value = getattr(args, attr)
        if value is not None:
            kwargs[key] = value
        kwargs.setdefault(key, default)
    if args.model:
        kwargs["model"] = args.model
    if args.objective:
        kwargs["objective"] = args.objective if len(args.objective) > 1 else args.objective[0]
    if args.constraint:
        kwargs["constraints"] = args.constraint
    if args.option:
        kwargs["options"] = {**kwargs.get("options", {}), **_options(args.option)}
    return kwargs


def _check(kwargs: dict, resume: bool) -> None:
    """Missing inputs and numeric options out of range, before anything is loaded. :raises ConfigError:"""
    from molvae.errors import ConfigError
    from molvae.objectives import get_objective

    for key, what in (("model", "MODEL (a model directory or a shipped model's name)"),
                      ("objective", "--objective (see --list-objectives)"), ("out", "--out DIR (the run directory)")):
        if kwargs.get(key) is None:
            raise ConfigError(f"missing {what}")
    for key, flag in (("budget", "--budget"), ("oracle_workers", "--oracle-workers"),
                      ("oracle_batch", "--oracle-batch"), ("n_decode", "--n-decode"), ("patience", "--patience"),
                      ("max_points", "--max-points")):
        if kwargs.get(key) is not None and kwargs[key] < 1:
            raise ConfigError(f"{flag} must be a positive integer, got {kwargs[key]}")
    timeout = kwargs.get("oracle_timeout")
    if timeout is not None and not 0 < timeout < float("inf"):
        raise ConfigError(f"--oracle-timeout must be a positive number of seconds, got {timeout:g}")
    objectives = kwargs["objective"] if isinstance(kwargs["objective"], list) else [kwargs["objective"]]
    for spec in objectives:  # a typo fails before the model is loaded
        get_objective(spec)
    if kwargs["budget"] is None and not resume:
        kwargs["budget"] = 1000


def run(args: argparse.Namespace) -> int:
    if args.list_objectives:
        from molvae.objectives import describe_objectives

        for name, text in describe_objectives().items():
            print(f"{name:28s} {text}")
        return 0
    if args.tell:
        from molvae.cli._asktell import tell

        return tell(args)
    if args.ask is not None:
        from molvae.cli._asktell import ask

        return ask(args, _settings(args))
    kwargs = _settings(args)
    _check(kwargs, args.resume)
    from molvae.optimize.methods import DEFAULT_METHOD

    several = isinstance(kwargs["objective"], list)
    kwargs["method"] = kwargs["method"] or ("nsga2" if several else DEFAULT_METHOD)
    from molvae.api import MolVAE
    from molvae.optimize import optimize

    model = MolVAE.load(kwargs.pop("model"), device=args.device)
    result = optimize(model, resume=args.resume, worker=args.worker, progress=not args.quiet, **kwargs)
    s = result.stats
    print(f"{result.study}: {int(result.df['call'].notna().sum())}/{result.budget} calls "
          f"({s['calls_this_worker']} by this worker), stopped: {s['stopped']}; "
          f"{s['wall_s']:.1f} s wall, {s['oracle_s']:.1f} s in the objective; results in {kwargs['out']}",
          file=sys.stderr)
    best = result.best(10)
    best[["call", "smiles", "score"] + [c for c in result.objectives if c in best.columns and c != "score"]] \
        .to_csv(sys.stdout, index=False)
    return 0
