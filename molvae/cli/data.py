"""molvae data: fetch named datasets, check and clean a SMILES file, list the cache.

    molvae data get moses DIR          # MOSES train/test/test-scaffolds from the molsets 0.3.1 wheel
    molvae data get zinc250k DIR       # the ZINC-250k CSV of the chemical VAE literature
    molvae data prepare in.smi --out clean.csv --rejects rejects.csv --max-len 120
    molvae data list                   # named datasets and whether they are in the cache
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch datasets; check and clean SMILES files",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    g = sub.add_parser("get", help="download and checksum a public dataset into DIR (cached)")
    g.add_argument("name", choices=["moses", "zinc250k"])
    g.add_argument("dir", help="destination folder (created if missing)")
    g.add_argument("--force", action="store_true", help="download again even if the files are present")
    g.add_argument("--url", help="zinc250k: fetch from this URL instead of the GitHub raw file")
    g.add_argument("--wheel", help="moses: take the splits from this molsets wheel (path or URL) instead of pip")
    g.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                   help="moses: extra argument for `pip download` (repeatable), e.g. --pip-arg=--index-url=URL")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    g.set_defaults(func=run_get)

    r = sub.add_parser("prepare", help="parse, canonicalize, deduplicate and SELFIES-encode a SMILES file, with a report")
    r.add_argument("input", help=".smi/.txt, .csv/.tsv or .sdf (optionally .gz), or a dataset name such as moses-train")
    r.add_argument("--out", help="write kept molecules (smiles, selfies, line, name) here: .csv/.tsv/.smi, '-' for stdout")
    r.add_argument("--rejects", help="write rejected rows (line, input, reason) to this CSV")
    r.add_argument("--smiles-column", help="CSV/TSV column holding SMILES (default: smiles/SMILES/canonical_smiles)")
    r.add_argument("--max-len", type=int, help="reject molecules with more SELFIES tokens than this")
    r.add_argument("--no-stereo", action="store_true", help="strip stereochemistry when canonicalizing")
    r.add_argument("--largest-fragment", action="store_true", help="keep only the largest fragment (drop salts, solvents)")
    r.add_argument("--keep-duplicates", action="store_true", help="do not deduplicate on canonical SMILES")
    r.add_argument("--workers", type=int, help="worker processes (default: all cores for large inputs)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=run_prepare)

    ls = sub.add_parser("list", help="named datasets and where they are cached")
    ls.add_argument("--cache-dir", help="cache folder (default: $MOLVAE_CACHE or ~/.cache/molvae)")
    ls.set_defaults(func=run_list)


def run_get(args: argparse.Namespace) -> int:
    from molvae.data import download_dataset

    paths = download_dataset(args.name, args.dir, force=args.force, progress=not args.quiet, url=args.url,
                             wheel=args.wheel, pip_args=args.pip_arg)
    for path in paths:
        print(path)
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    import pandas as pd

    from molvae.data import prepare_molecules, write_molecules

    data = prepare_molecules(args.input, max_len=args.max_len, stereo=not args.no_stereo,
                             largest_fragment=args.largest_fragment, smiles_column=args.smiles_column,
                             dedupe=not args.keep_duplicates, progress=not args.quiet, workers=args.workers)
    print(data.summary(), file=sys.stderr)
    if args.rejects:
        data.write_rejects(args.rejects)
        print(f"rejects: {args.rejects}", file=sys.stderr)
    if args.out:
        table = pd.DataFrame({"smiles": data.smiles, "selfies": data.selfies, "line": data.lines, "name": data.names})
        if all(n is None for n in data.names):
            table = table.drop(columns="name")
        write_molecules(table, args.out)
        if args.out != "-":
            print(f"kept molecules: {args.out}", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from molvae.datasets import DATASETS, dataset_cache

    cache = dataset_cache(args.cache_dir)
    print(f"cache: {cache}")
    for name, (group, fname) in DATASETS.items():
        path = cache / fname
        state = "cached" if path.exists() else f"not downloaded (molvae data get {group} {cache})"
        print(f"  {name:22s} {state}")
    return 0
