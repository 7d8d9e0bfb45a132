"""Latent-space optimization benchmarks: the PMO protocol, the classic tasks, and optimizer overhead.

PMO (Gao et al. 2022, "Sample Efficiency Matters"): for each task, a budget of oracle calls (10,000),
AUC of the top-10 mean against calls (every 100 calls, trapezoid from (0, 0), normalized by the
budget, last value carried forward if a run stops early; repeated molecules are free), over seeds.
Published PMO rows (../shared/reference/pmo_auc_top10.csv) and, with --screening, our own
random-screening baseline (scripts/bench_screening.py --out FILE) are printed beside ours. Sums are
over the 16 tasks PMO scored with GuacaMol's definitions (and over all 20 for ours).

Classic tasks (JT-VAE / GCPN): unconstrained QED and standardized penalized logP (top-3, molecules
no larger than ZINC-250k's largest, 38 heavy atoms, enforced as a constraint), and constrained
penalized-logP improvement from the 800 lowest-scoring of 5,000 random ZINC-250k molecules (JT-VAE
took the 800 lowest of its held-out ZINC test set; the lowest of all ZINC-250k are extreme macrocycles
whose ring penalty alone is worth 30+ units) at similarity 0.4 / 0.6.

Every run's row is appended to a CSV in --out as soon as it finishes; a rerun skips rows already
there, so a long benchmark can be run piecemeal (--tasks, --methods, --seeds, --budget) and the
report (--report) always says exactly what was run. Each run's oracle log (call number, SMILES,
score, in call order) is kept gzipped in --out/calls/, so the AUC table can be recomputed from the
logs alone (scripts/pmo_from_logs.py) and committed beside the model it came from.

    python scripts/bench_optimize.py MODEL --out runs/bench_opt --tasks qed median1 --budget 1000 --seeds 0
    python scripts/bench_optimize.py MODEL --out runs/bench_opt                      # the full protocol
    python scripts/bench_optimize.py MODEL --out runs/bench_opt --classic --constrained-n 50
    python scripts/bench_optimize.py MODEL --out runs/bench_opt --report --screening screening.json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import statistics
import sys
import time
from pathlib import Path

from benchenv import machine

from molvae.objectives import PMO_TASKS
from molvae.optimize.methods import DEFAULT_METHOD

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FORMULA_TASKS = {"isomers_c7h8n2o2", "isomers_c9h10n2o2pf2cl", "sitagliptin_mpo", "zaleplon_mpo"}
PMO_COLUMNS = ["REINVENT", "Graph_GA", "GP_BO", "SELFIES_VAE_BO", "Screening"]
NEWER_COLUMNS = ["Genetic_GFN", "Mol_GA", "InVirtuoGen_no_prescreen"]  # the same plain protocol, 16 tasks
PMO_FIELDS = ["task", "method", "seed", "budget", "n_decode", "temperature", "options", "auc_top10", "top1",
              "top10_mean", "calls", "stopped", "latent_points", "decoded", "invalid_decodes", "wall_s", "oracle_s",
              "optimizer_s_per_1000_calls", "best_smiles"]
MAX_HEAVY = 38  # ZINC-250k's largest molecule


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def append_row(path: Path, fields: list[str], row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def log_name(task: str, method: str, seed: int, budget: int, n_decode: int, temperature: float, options: str) -> str:
    """The file of one run's call log under --out/calls/ (options hashed: they may hold any JSON)."""
    import hashlib

    digest = hashlib.sha1(options.encode()).hexdigest()[:8]
    return f"{task}__{method}__seed{seed}__b{budget}__d{n_decode}__t{temperature:g}__o{digest}.csv.gz"


def save_calls(res, path: Path) -> None:
    """The charged calls of a run, in call order: call, smiles, score (empty for a failed call; 6 significant
    digits, which move an AUC by less than 1e-5 and keep the logs small enough to commit)."""
    charged = res.df[res.df["call"].notna()].sort_values("call")
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as fh:
        charged[["call", "smiles", "score"]].astype({"call": int}).to_csv(fh, index=False, float_format="%.6g")


def read_pmo(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["task"]: r for r in csv.DictReader(fh)}


def pmo_mean(cell: str) -> float:
    return float(cell.split("±")[0]) if cell else float("nan")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


# --------------------------------------------------------------------------- PMO


def read_zinc() -> list[str]:
    """The SMILES of ZINC-250k from ``../shared/data``; a one-line exit where this checkout has none."""
    path = SHARED / "data" / "zinc250k.smi.gz"
    if not path.is_file():
        sys.exit(f"bench_optimize: {path} not found (ZINC-250k: the zinc seeds and the constrained task need it)")
    with gzip.open(path, "rt") as fh:
        return [line.split()[0] for line in fh if line.strip()]


def zinc_sample(n: int, seed: int) -> list[str]:
    """``n`` molecules of ZINC-250k drawn with ``seed``: a starting library, as Graph GA draws one in PMO."""
    return random.Random(seed).sample(read_zinc(), n)


def run_pmo(model, args, out: Path) -> None:
    from molvae.optimize import optimize

    path = out / "pmo_runs.csv"
    strategy = dict(args.option)
    init = int(strategy.pop("init_zinc", 0))  # seeds: a random ZINC library, scored first (charged)
    done = {(r["task"], r["method"], r["seed"], r["budget"], r["n_decode"], r["temperature"], r["options"])
            for r in read_rows(path)}
    tasks = args.tasks or list(PMO_TASKS)
    options = json.dumps(args.option, sort_keys=True)
    for task in tasks:
        for method in args.methods:
            for seed in args.seeds:
                key = (task, method, str(seed), str(args.budget), str(args.n_decode), str(args.temperature), options)
                if key in done:
                    continue
                t0 = time.perf_counter()
                res = optimize(model, task, budget=args.budget, method=method, seed=seed, n_decode=args.n_decode,
                               temperature=args.temperature, patience=args.patience, options=strategy,
                               seeds=zinc_sample(init, seed) if init else None, progress=not args.quiet)
                best = res.best(10)
                row = dict(task=task, method=method, seed=seed, budget=args.budget, n_decode=args.n_decode,
                           temperature=args.temperature, options=options,
                           auc_top10=round(res.auc(k=10, freq=100, budget=args.budget), 4),
                           top1=round(float(best["score"].iloc[0]), 4) if len(best) else 0.0,
                           top10_mean=round(float(best["score"].mean()), 4) if len(best) else 0.0,
                           calls=int(res.df["call"].notna().sum()),
                           best_smiles=best["smiles"].iloc[0] if len(best) else "",
                           **{k: res.stats[k] for k in ("stopped", "latent_points", "decoded", "invalid_decodes",
                                                        "wall_s", "oracle_s", "optimizer_s_per_1000_calls")})
                save_calls(res, out / "calls" / log_name(task, method, seed, args.budget, args.n_decode,
                                                         args.temperature, options))
                append_row(path, PMO_FIELDS, row)
                print(f"  {task:26s} {method:10s} seed {seed}: AUC {row['auc_top10']:.3f}  top-1 {row['top1']:.3f}  "
                      f"{row['calls']} calls  {time.perf_counter() - t0:.0f} s  ({row['stopped']})", flush=True)


def report_pmo(out: Path, pmo: dict, screening: dict | None) -> None:
    rows = read_rows(out / "pmo_runs.csv")
    if not rows:
        return

    configs = sorted({(r["method"], r["budget"], r["n_decode"], r["temperature"], r["options"]) for r in rows})
    print()
    print("## PMO: AUC top-10 (mean ± std over seeds)")
    for config in configs:
        method, budget, n_decode, temperature, options = config
        sel = [r for r in rows if (r["method"], r["budget"], r["n_decode"], r["temperature"], r["options"]) == config]
        tasks = [t for t in PMO_TASKS if any(r["task"] == t for r in sel)]
        seeds = sorted({int(r["seed"]) for r in sel})
        print()
        print(f"### method {method}, budget {int(budget):,}, n_decode {n_decode} (temperature {temperature}), "
              f"options {options}; "
              f"{len(tasks)} tasks, seeds {seeds}")
        print()
        if int(budget) != 10000:
            print(f"(budget {int(budget):,}, not PMO's 10,000: the published columns are not comparable)")
            print()
        head = "| task | molvae | " + ("our screening | " if screening else "") + " | ".join((PMO_COLUMNS + NEWER_COLUMNS)) + \
               " | top-1 | calls | wall s | optimizer s / 1k calls |"
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        sums = {"ours16": 0.0, "ours20": 0.0, "scr16": 0.0, "scr20": 0.0, **{c: 0.0 for c in (PMO_COLUMNS + NEWER_COLUMNS)}}
        for task in tasks:
            tr = [r for r in sel if r["task"] == task]
            m, s = mean_std([float(r["auc_top10"]) for r in tr])
            cells = [f"{m:.3f} ± {s:.3f}" + (f" (n={len(tr)})" if len(tr) != len(seeds) else "")]
            if screening:
                sc = screening.get(task)
                cells.append(f"{sc['mean']:.3f} ± {sc['std']:.3f}" if sc else "–")
                if sc:
                    sums["scr20"] += sc["mean"]
                    sums["scr16"] += 0 if task in FORMULA_TASKS else sc["mean"]
            for c in (PMO_COLUMNS + NEWER_COLUMNS):
                cell = pmo.get(task, {}).get(c, "")
                cells.append(("(n/c) " if task in FORMULA_TASKS else "") + (cell or "–"))
                if task not in FORMULA_TASKS and cell:
                    sums[c] += pmo_mean(cell)
            sums["ours20"] += m
            sums["ours16"] += 0 if task in FORMULA_TASKS else m
            top1 = statistics.fmean(float(r["top1"]) for r in tr)
            calls = statistics.fmean(int(r["calls"]) for r in tr)
            wall = statistics.median(float(r["wall_s"]) for r in tr)
            ovh = statistics.median(float(r["optimizer_s_per_1000_calls"]) for r in tr)
            mark = " †" if task in FORMULA_TASKS else ""
            print(f"| {task}{mark} | " + " | ".join(cells) + f" | {top1:.3f} | {calls:,.0f} | {wall:.0f} | {ovh:.1f} |")
        n16 = sum(t not in FORMULA_TASKS for t in tasks)
        line = f"| **sum over the {n16} comparable tasks run** | **{sums['ours16']:.3f}** | "
        if screening:
            line += f"{sums['scr16']:.3f} | "
        line += " | ".join(f"{sums[c]:.3f}" for c in (PMO_COLUMNS + NEWER_COLUMNS)) + " | | | | |"
        print(line)
        if len(tasks) == 20:
            print(f"| sum over all 20 | {sums['ours20']:.3f} | " + (f"{sums['scr20']:.3f} | " if screening else "")
                  + " | ".join("–" for _ in (PMO_COLUMNS + NEWER_COLUMNS)) + " | | | | |")
        ovh = statistics.median(float(r["optimizer_s_per_1000_calls"]) for r in sel)
        print()
        print(f"optimizer time per 1,000 oracle calls, excluding the oracle (median over {len(sel)} runs): "
              f"{ovh:.1f} s (decoding + encoding + strategy + database)")
    print()
    print("† formula tasks: PMO's published numbers counted atoms in the SMILES string (n/c = not comparable); "
          "compare them with our screening column only.")


# --------------------------------------------------------------------------- classic tasks


def constrained_starts(pool_size: int, workers: int) -> list[tuple[str, float]]:
    """The 800 molecules of lowest standardized penalized logP, with their scores, among ``pool_size`` random
    ZINC-250k molecules (seed 0; all of ZINC-250k if 0): the start molecules of the constrained task."""
    import multiprocessing as mp

    zinc = read_zinc()
    if pool_size:  # JT-VAE took the 800 lowest of its held-out ZINC test set, not of all ZINC
        zinc = random.Random(0).sample(zinc, pool_size)
    chunks = [zinc[i:i + 2000] for i in range(0, len(zinc), 2000)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.map(_plogp_chunk, chunks)
    return sorted((r for part in parts for r in part), key=lambda r: r[1])[:800]


def _plogp_chunk(smiles: list[str]) -> list[tuple[str, float]]:
    from molvae.chem import parse_smiles, to_canonical
    from molvae.objectives import get_objective

    obj = get_objective("penalized_logp")
    out = []
    for s in smiles:
        mol, _ = parse_smiles(s)
        if mol is not None:
            out.append((to_canonical(mol), obj.score_mol(mol)))
    return out


def run_classic(model, args, out: Path) -> None:
    from molvae.optimize import optimize

    path = out / "classic_runs.csv"
    fields = ["task", "method", "seed", "budget", "n_decode", "top1", "top2", "top3", "top3_smiles", "calls",
              "violations", "wall_s", "oracle_s", "calls_to_best"]
    done = {(r["task"], r["method"], r["seed"], r["budget"]) for r in read_rows(path)}
    for task in ("qed", "penalized_logp"):
        for seed in args.seeds:
            method = args.methods[0]
            if (task, method, str(seed), str(args.budget)) in done:
                continue
            res = optimize(model, task, budget=args.budget, method=method, seed=seed, n_decode=args.n_decode,
                           temperature=args.temperature, constraints=[f"heavy_atoms<={MAX_HEAVY}"],
                           patience=args.patience, options=args.option,
                           progress=not args.quiet)
            best = res.best(3)
            row = dict(task=task, method=method, seed=seed, budget=args.budget, n_decode=args.n_decode,
                       **{f"top{i + 1}": round(float(v), 4) for i, v in enumerate(best["score"])},
                       top3_smiles=" ".join(best["smiles"]), calls=int(res.df["call"].notna().sum()),
                       violations=int((res.df["status"] == "violated").sum()), wall_s=res.stats["wall_s"],
                       oracle_s=res.stats["oracle_s"], calls_to_best=int(best["call"].iloc[0]))
            append_row(path, fields, row)
            print(f"  {task:15s} seed {seed}: top-3 {row['top1']:.3f} / {row.get('top2', 0):.3f} / "
                  f"{row.get('top3', 0):.3f}  {row['calls']} calls  {row['wall_s']:.0f} s", flush=True)


def run_constrained(model, args, out: Path) -> None:
    from molvae.chem import morgan_fingerprint, parse_smiles
    from molvae.optimize import optimize
    from rdkit import DataStructs

    lowest = constrained_starts(args.constrained_pool, args.workers)
    path = out / "constrained_runs.csv"
    fields = ["delta", "index", "smiles", "start", "method", "budget", "best", "best_smiles", "similarity",
              "improvement", "success", "calls", "wall_s"]
    done = {(r["delta"], r["index"], r["method"], r["budget"]) for r in read_rows(path)}
    for i, (smi, start) in enumerate(lowest[:args.constrained_n]):  # both deltas per molecule: stop any time
        for delta in args.deltas:
            method = args.methods[0]
            if (str(delta), str(i), method, str(args.constrained_budget)) in done:
                continue
            res = optimize(model, "penalized_logp", budget=args.constrained_budget, method=method, seed=i,
                           seeds=[smi], constraints=[f"similarity>={delta}:{smi}", f"heavy_atoms<={MAX_HEAVY}"],
                           n_decode=args.n_decode, temperature=args.temperature, patience=args.patience,
                           options=args.option, progress=False)
            cand = res.scored[res.scored["smiles"] != smi]
            ref = morgan_fingerprint(parse_smiles(smi)[0], 2, 2048)
            if len(cand):
                top = cand.sort_values("score", ascending=False).iloc[0]
                sim = DataStructs.TanimotoSimilarity(morgan_fingerprint(parse_smiles(top["smiles"])[0], 2, 2048), ref)
                best, best_smiles = float(top["score"]), top["smiles"]
            else:
                best, best_smiles, sim = start, "", 1.0
            improvement = max(0.0, best - start)
            row = dict(delta=delta, index=i, smiles=smi, start=round(start, 4), method=method,
                       budget=args.constrained_budget, best=round(best, 4), best_smiles=best_smiles,
                       similarity=round(sim, 4), improvement=round(improvement, 4), success=int(improvement > 0),
                       calls=int(res.df["call"].notna().sum()), wall_s=res.stats["wall_s"])
            append_row(path, fields, row)
            if i % 10 == 0:
                print(f"  delta {delta} molecule {i}: improvement {improvement:.2f} (sim {sim:.2f}), "
                      f"{row['calls']} calls, {row['wall_s']:.0f} s", flush=True)


def report_classic(out: Path) -> None:
    rows = read_rows(out / "classic_runs.csv")
    if rows:
        print()
        print(f"## Classic tasks: top-3 (molecules with at most {MAX_HEAVY} heavy atoms)")
        print()
        print("| task | method | seed | budget | top-1 | top-2 | top-3 | calls | calls to best | wall s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['task']} | {r['method']} | {r['seed']} | {int(r['budget']):,} | {r['top1']} | "
                  f"{r.get('top2', '')} | "
                  f"{r.get('top3', '')} | {r['calls']} | {r['calls_to_best']} | {float(r['wall_s']):.0f} |")
        print()
        print("References (../shared/reference/README.md): QED JT-VAE 0.925 / 0.911 / 0.910, "
              "GCPN 0.948 / 0.947 / 0.946; "
              "penalized logP (standardized) JT-VAE 5.30 / 4.93 / 4.49, GCPN 7.98 / 7.85 / 7.80, "
              "best of ZINC-250k 4.52 / 4.30 / 4.23.")
    rows = read_rows(out / "constrained_runs.csv")
    if rows:
        print()
        print("## Constrained penalized-logP improvement from the 800 lowest-scoring of 5,000 random ZINC-250k molecules")
        print()
        print("| delta | method | molecules | budget each | improvement (all, failures = 0) | improvement (successes) "
              "| success | median calls | median wall s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for delta in sorted({r["delta"] for r in rows}):
            for method in sorted({r["method"] for r in rows}):
                sel = [r for r in rows if r["delta"] == delta and r["method"] == method]
                if not sel:
                    continue
                imp = [float(r["improvement"]) for r in sel]
                succ = [float(r["improvement"]) for r in sel if r["success"] == "1"]
                m, s = mean_std(imp)
                ms = mean_std(succ) if succ else (0.0, 0.0)
                print(f"| {delta} | {method} | {len(sel)} | {sel[0]['budget']} | {m:.2f} ± {s:.2f} | "
                      f"{ms[0]:.2f} ± {ms[1]:.2f} | {100 * len(succ) / len(sel):.1f}% | "
                      f"{statistics.median(int(r['calls']) for r in sel)} | "
                      f"{statistics.median(float(r['wall_s']) for r in sel):.1f} |")
        print()
        print("References: JT-VAE delta 0.4 0.84 ± 1.45, 83.6%; delta 0.6 0.21 ± 0.71, 46.4%. "
              "GCPN delta 0.4 2.49 ± 1.30, 100%; delta 0.6 0.79 ± 0.63, 100%.")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="model directory (trained on ZINC-250k for PMO)")
    parser.add_argument("--out", required=True, help="results directory (CSV rows are appended, reruns skip them)")
    parser.add_argument("--tasks", nargs="+", choices=list(PMO_TASKS), metavar="TASK",
                        help="PMO tasks (default: all 20)")
    parser.add_argument("--methods", nargs="+", default=[DEFAULT_METHOD], help=f"default {DEFAULT_METHOD}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=10000)
    parser.add_argument("--n-decode", type=int, default=1, help="molecules decoded per latent point")
    parser.add_argument("--temperature", type=float, default=1.0, help="temperature of the extra decodings")
    parser.add_argument("--patience", type=int, default=3000)
    parser.add_argument("--option", type=json.loads, default={},
                        help='strategy options as JSON; "init_zinc": N starts PMO runs from N random ZINC-250k '
                             'molecules (scored first, charged)')
    parser.add_argument("--pmo", action="store_true", help="run the PMO tasks (default if nothing else is chosen)")
    parser.add_argument("--classic", action="store_true", help="run unconstrained QED / penalized logP")
    parser.add_argument("--constrained", action="store_true", help="run constrained penalized-logP improvement")
    parser.add_argument("--constrained-n", type=int, default=800, help="how many of the 800 lowest molecules")
    parser.add_argument("--constrained-budget", type=int, default=100, help="oracle calls per start molecule")
    parser.add_argument("--constrained-pool", type=int, default=5000,
                        help="the 800 lowest of this many random ZINC-250k molecules (JT-VAE: of its held-out "
                             "test set; 0 = all of ZINC-250k, whose lowest are extreme macrocycles)")
    parser.add_argument("--deltas", type=float, nargs="+", default=[0.4, 0.6])
    parser.add_argument("--workers", type=int, default=2, help="processes for scoring ZINC-250k")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--screening", help="JSON from scripts/bench_screening.py --out, shown beside ours")
    parser.add_argument("--report", action="store_true", help="only print the tables from what --out holds")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("# molvae latent-space optimization benchmark")
    print(f"machine: {machine()}")
    if not args.report:
        if not args.model:
            parser.error("MODEL is required unless --report")
        if args.constrained_pool and args.constrained_pool < 800 or not 1 <= args.constrained_n <= 800:
            parser.error("--constrained-pool must be 0 or at least 800, --constrained-n between 1 and 800")
        from molvae import MolVAE

        model = MolVAE.load(args.model, device="cpu" if args.threads else "auto")
        print(f"model: {args.model} ({model!r})")
        print(f"settings: methods={args.methods} seeds={args.seeds} budget={args.budget} n_decode={args.n_decode} "
              f"temperature={args.temperature} "
              f"patience={args.patience} options={args.option}")
        if not (args.classic or args.constrained) or args.pmo:
            print(f"PMO tasks: {args.tasks or 'all 20'}")
            run_pmo(model, args, out)
        if args.classic:
            print("classic: qed, penalized_logp")
            run_classic(model, args, out)
        if args.constrained:
            print(f"constrained: {args.constrained_n} molecules x deltas {args.deltas}, "
                  f"{args.constrained_budget} calls each")
            run_constrained(model, args, out)
    screening = None
    if args.screening:
        screening = json.loads(Path(args.screening).read_text()).get("screening")
    published = read_pmo(SHARED / "reference" / "pmo_auc_top10.csv")
    for task, cells in read_pmo(SHARED / "reference" / "pmo_newer_methods_auc_top10.csv").items():
        published.setdefault(task, {}).update(cells)
    report_pmo(out, published, screening)
    report_classic(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
