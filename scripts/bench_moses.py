"""The MOSES benchmark for a molvae model, beside the published MOSES rows.

Samples 30,000 molecules from the model's prior (temperature 1, seed 0), scores them with
``molvae.metrics.evaluate`` against the MOSES test and scaffold-test splits with the MOSES training
split for novelty, prints the table in the layout of the MOSES README next to the published rows
(means over 3 runs of 30,000 samples, Polykovskiy et al. 2020), and writes the same as a markdown
snippet (plus metrics.json and the sampled SMILES) for BENCHMARKS.md.

Two rows per model (``--protocol both``, the default): (a) the MOSES protocol applied to the raw
stream, 30,000 token strings decoded as they come, with the strings the SELFIES decoder had to repair
counted as invalid (so validity is the acceptance rate and the other metrics are over the valid
molecules, as a SMILES model's invalid strings are counted); (b) molvae's default output, 30,000
accepted samples (repaired strings drawn again). metrics.json holds (b) with its acceptance rate,
metrics_protocol_a.json (a).

    python scripts/bench_moses.py runs/moses --out runs/moses/bench

The MOSES splits are read from ``--data`` (default ``../shared/data`` when present) or else
through molvae's named datasets (``moses-test`` ...), which fetch them once.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PUBLISHED = SHARED / "reference" / "moses_published.csv"

COLUMNS = [  # (published column, header)
    ("valid", "Valid"), ("unique_1k", "Unique@1k"), ("unique_10k", "Unique@10k"),
    ("fcd_test", "FCD Test"), ("fcd_testsf", "FCD TestSF"), ("snn_test", "SNN Test"),
    ("snn_testsf", "SNN TestSF"), ("frag_test", "Frag Test"), ("frag_testsf", "Frag TestSF"),
    ("scaf_test", "Scaf Test"), ("scaf_testsf", "Scaf TestSF"), ("intdiv", "IntDiv"), ("intdiv2", "IntDiv2"),
    ("filters", "Filters"), ("novelty", "Novelty"),
]


def published_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: (v if k == "model" else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)]


def fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if abs(v) < 10 else f"{v:.3f}"


def markdown_table(rows: list[dict]) -> str:
    head = "| Model | " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(COLUMNS)
    body = [f"| {r['model']} | " + " | ".join(fmt(r.get(c)) for c, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def text_table(rows: list[dict]) -> str:
    widths = [max(len("model"), *(len(r["model"]) for r in rows))] + [max(len(h), 7) for _, h in COLUMNS]
    lines = ["  ".join(["model".ljust(widths[0])] + [h.rjust(w) for (_, h), w in zip(COLUMNS, widths[1:])])]
    for r in rows:
        lines.append("  ".join([r["model"].ljust(widths[0])] +
                               [fmt(r.get(c)).rjust(w) for (c, _), w in zip(COLUMNS, widths[1:])]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="model directory")
    ap.add_argument("--n", type=int, default=30_000, help="molecules to sample (default 30000, as MOSES)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--prior", default="auto", choices=["auto", "model", "fitted"],
                    help="where samples come from (auto: the fitted latent mixture when the model has one)")
    ap.add_argument("--label", help="row name in the table (default: molvae <model dir name>)")
    ap.add_argument("--data", type=Path, default=SHARED / "data" if (SHARED / "data").exists() else None,
                    help="folder with moses_{train,test,test_scaffolds}.csv.gz (default ../shared/data if present, "
                         "else molvae's named datasets)")
    ap.add_argument("--out", type=Path, default=Path("bench_moses"), help="output folder (default ./bench_moses)")
    ap.add_argument("--n-jobs", type=int)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ref-n", type=int, help="use only the first N molecules of each split (pipeline tests only)")
    ap.add_argument("--protocol", choices=["both", "a", "b"], default="both",
                    help="a: repaired strings counted invalid; b: molvae's accepted samples (default both)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    from molvae import MolVAE, __version__
    from molvae.metrics import evaluate, moses_table_row

    if args.data:
        test, test_sf, train = (args.data / f"moses_{s}.csv.gz" for s in ("test", "test_scaffolds", "train"))
    else:
        test, test_sf, train = "moses-test", "moses-test-scaffolds", "moses-train"
    if args.ref_n:
        from molvae.data import read_smiles

        args.out.mkdir(parents=True, exist_ok=True)
        cut = []
        for name, src in (("test", test), ("test_scaffolds", test_sf), ("train", train)):
            path = args.out / f"first_{args.ref_n}_{name}.smi"
            path.write_text("\n".join(read_smiles(src)["input"].head(args.ref_n)) + "\n")
            cut.append(path)
        test, test_sf, train = cut
    model = MolVAE.load(args.model, device=args.device)
    label = args.label or f"molvae ({Path(args.model).name})"
    epochs = ""
    log = Path(args.model) / "train_log.csv"
    if log.exists():
        with open(log) as fh:
            epochs = f", {sum(1 for _ in fh) - 1} epochs logged"
    settings = (f"model {args.model}: {model!r}{epochs}; {args.n} samples, temperature {args.temperature}, "
                f"seed {args.seed}; reference moses test / test_scaffolds, novelty vs moses train"
                + (f" (first {args.ref_n} of each only)" if args.ref_n else "") + f"; molvae "
                f"{__version__}; machine {machine(str(model.device))}")
    print(f"# {settings}", flush=True)

    runs = {}  # protocol -> (metrics, smiles, sampling s, evaluation s)
    for protocol in ("a", "b") if args.protocol == "both" else (args.protocol,):
        t0 = time.perf_counter()
        df = model.sample(args.n, temperature=args.temperature, seed=args.seed, progress=not args.quiet,
                          prior=args.prior, keep_repaired=protocol == "a")
        t_sample = time.perf_counter() - t0
        smiles = [None if r else s for s, r in zip(df["smiles"], df["repaired"])]
        t0 = time.perf_counter()
        metrics = evaluate(smiles, ref=test, ref_scaffolds=test_sf, train=train, n_jobs=args.n_jobs,
                           device=args.device, progress=not args.quiet)
        metrics["acceptance_rate"] = df.attrs["acceptance_rate"]
        runs[protocol] = (metrics, smiles, t_sample, time.perf_counter() - t0)
    names = {"a": "(a) repaired = invalid", "b": "(b) accepted samples"}
    rows = [dict(r) for r in published_rows(PUBLISHED)]
    for protocol, (metrics, *_rest) in runs.items():
        rows.append(moses_table_row(metrics, model=f"{label} {names[protocol]}"))
    print()
    print(text_table(rows))
    metrics, smiles, t_sample, t_eval = runs["b" if "b" in runs else "a"]
    acceptance = "; ".join(f"{names[p]}: acceptance rate {fmt(m['acceptance_rate'])}, sampling {ts:.0f} s, "
                           f"evaluation {te:.0f} s" for p, (m, _, ts, te) in runs.items())
    extra = (f"GuacaMol (vs a 10k subset of moses test): validity {fmt(metrics['guacamol_validity'])}, uniqueness "
             f"{fmt(metrics['guacamol_uniqueness'])}, novelty {fmt(metrics['guacamol_novelty'])}, KL score "
             f"{fmt(metrics['guacamol_kl_score'])}, FCD score {fmt(metrics['guacamol_fcd_score'])}; property "
             f"distances (W1) logP {fmt(metrics['logP'])}, SA {fmt(metrics['SA'])}, QED {fmt(metrics['QED'])}, "
             f"MW {fmt(metrics['weight'])}")
    print(f"\n{extra}\n{acceptance}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if "a" in runs and "b" in runs:
        (args.out / "metrics_protocol_a.json").write_text(json.dumps(runs["a"][0], indent=2) + "\n")
    (args.out / "samples.smi").write_text("\n".join(s or "" for s in smiles) + "\n")
    snippet = "\n".join([
        "### MOSES benchmark",
        "",
        f"{args.n:,} molecules sampled from the prior of each model, scored against the MOSES test (Test) and "
        f"scaffold-test (TestSF) splits; published rows from the MOSES paper/README (means of 3 runs). "
        f"Ours: `python scripts/bench_moses.py {args.model}`.",
        "",
        markdown_table(rows),
        "",
        f"{extra}.",
        "",
        f"Settings: {settings}. {acceptance}.",
        "",
    ])
    (args.out / "bench_moses.md").write_text(snippet)
    print(f"wrote {args.out / 'bench_moses.md'}, metrics.json, samples.smi", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
