"""``molvae evaluate``: MOSES and GuacaMol distribution metrics of a file of generated molecules."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score generated molecules with the MOSES / GuacaMol distribution metrics",
        description="Score generated molecules against a reference set: validity, uniqueness, novelty, "
                    "internal diversity, filters, FCD, SNN, Frag, Scaf, property distances and the GuacaMol "
                    "scores. Prints a table and writes metrics.json. In a .smi file every line is one "
                    "molecule, and a blank line counts as an invalid one.",
    )
    p.add_argument("generated", help="generated SMILES (.smi/.txt, or .csv/.tsv with a SMILES column; .gz ok)")
    p.add_argument("--ref", help="reference set: a file, or moses-test / moses-test-scaffolds "
                                 "(without it only the metrics that need no reference)")
    p.add_argument("--ref-scaffolds", help="second reference (the MOSES scaffold split), reported as .../TestSF")
    p.add_argument("--train", help="training set for novelty: a file or moses-train")
    p.add_argument("--out", default=".", help="folder for metrics.json (default: the current folder)")
    p.add_argument("--n-jobs", type=int, help="worker processes (default: all CPUs)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] for ChemNet and Tanimoto matrices")
    p.add_argument("--cache-dir", help="reference-statistics cache (default: $MOLVAE_CACHE/metrics)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from molvae.errors import ConfigError
    from molvae.metrics import evaluate, format_table

    if args.n_jobs is not None and args.n_jobs < 1:
        raise ConfigError(f"--n-jobs must be at least 1, got {args.n_jobs}")
    metrics = evaluate(args.generated, ref=args.ref, train=args.train, ref_scaffolds=args.ref_scaffolds,
                       n_jobs=args.n_jobs, device=args.device, cache_dir=args.cache_dir, progress=not args.quiet)
    print(format_table(metrics))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if metrics.get("n_ref_invalid"):
        print(f"note: {metrics['n_ref_invalid']} reference molecules did not parse and were left out",
              file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    return 0
