"""Transfer learning on a real chemical series: fine-tune a general model, compare with the base and with scratch.

    python scripts/bench_finetune.py zinc250k --out runs/bench_ft [--minutes 10] [--samples 2000]

The series is one Bemis-Murcko scaffold family of the MOSES test set, held out from ZINC-250k: the
largest family whose scaffold has at least two rings and that has --min-size to --max-size members
none of which is in ZINC-250k (so the base model never saw them). 80% of it is the chemist's series
(fine-tuning data), 20% is held out to judge the samples. Three models are compared on --samples prior
samples each, against the held-out 20%:

- the base model as it is;
- the base model fine-tuned on the series (``MolVAE.fit(series, init=BASE)``, FINETUNE_DEFAULTS, for
  --minutes of wall clock);
- the same architecture trained from scratch on the series for the same wall clock.

The two trained models are sampled twice: from N(0, I) (``prior="model"``) and from the Gaussian
mixture fitted after training to the series' latent means (``latent_prior_components=20``, the
fine-tuning default), which is what ``molvae sample`` uses.

Measures: FCD, SNN, Frag and Scaf against the held-out molecules (molvae's MOSES metrics), the share
of valid samples that contain the series' scaffold, validity, uniqueness and novelty against the
series. Prints the settings, the machine and a markdown table; writes results.json in --out.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def read_smiles_column(path: Path) -> list[str]:
    """The SMILES column of a MOSES CSV or the first field of a .smi file (gzipped)."""
    with gzip.open(path, "rt") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    if lines[0].lower().startswith("smiles"):
        return [line.split(",")[0] for line in lines[1:]]
    return [line.split()[0] for line in lines]


def pick_series(test: list[str], zinc: set[str], min_size: int, max_size: int) -> tuple[str, list[str]]:
    """The largest >= 2-ring scaffold family of ``test`` with no member in ``zinc`` (canonical SMILES)."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors
    from rdkit.Chem.Scaffolds import MurckoScaffold

    families: dict[str, list[str]] = defaultdict(list)
    for smi in test:
        mol = Chem.MolFromSmiles(smi)
        if mol is None:
            continue
        can = Chem.MolToSmiles(mol)
        if can in zinc:
            continue
        scaffold = MurckoScaffold.MurckoScaffoldSmiles(mol=mol)
        families[scaffold].append(can)
    ranked = sorted(((len(v), k) for k, v in families.items()
                     if min_size <= len(v) <= max_size and k and rdMolDescriptors.CalcNumRings(Chem.MolFromSmiles(k)) >= 2),
                    reverse=True)
    if not ranked:
        sys.exit(f"no >= 2-ring scaffold family with {min_size}..{max_size} members outside ZINC-250k")
    scaffold = ranked[0][1]
    return scaffold, families[scaffold]


def judge(name: str, smiles: list, held_out: list[str], series: list[str], scaffold: str) -> dict:
    """MOSES metrics of samples against the held-out part of the series, and the scaffold hit rate."""
    from rdkit import Chem

    from molvae.metrics import evaluate

    metrics = evaluate(smiles, ref=held_out, train=series, progress=False)
    pattern = Chem.MolFromSmiles(scaffold)
    valid = [Chem.MolFromSmiles(s) for s in smiles if isinstance(s, str) and s]
    valid = [m for m in valid if m is not None]
    hits = sum(m.HasSubstructMatch(pattern) for m in valid) / max(1, len(valid))
    keep = {k: metrics.get(k) for k in ("validity", "unique@1000", "novelty", "FCD/Test", "SNN/Test", "Frag/Test",
                                          "Scaf/Test")}
    return {"model": name, **keep, "scaffold_hits": hits}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="the general model (a shipped name or a model directory)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock minutes for each of the two trainings")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--min-size", type=int, default=200)
    ap.add_argument("--max-size", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from rdkit import Chem

    from molvae import MolVAE

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"# fine-tuning benchmark\nmachine: {machine()}\n"
          f"settings: base={args.base} minutes={args.minutes} samples={args.samples} seed={args.seed}", flush=True)
    zinc = {Chem.MolToSmiles(m) for m in map(Chem.MolFromSmiles, read_smiles_column(SHARED / "zinc250k.smi.gz")) if m}
    scaffold, family = pick_series(read_smiles_column(SHARED / "moses_test.csv.gz"), zinc, args.min_size, args.max_size)
    random.Random(args.seed).shuffle(family)
    cut = int(0.8 * len(family))
    series, held_out = family[:cut], family[cut:]
    print(f"series: scaffold {scaffold}, {len(family)} MOSES test molecules outside ZINC-250k "
          f"({len(series)} to train on, {len(held_out)} held out)", flush=True)
    base = MolVAE.load(args.base)
    t0 = time.perf_counter()
    tuned = MolVAE.fit(series, init=base, out=out / "finetuned", max_minutes=args.minutes, progress=False,
                       seed=args.seed)
    t_tuned = time.perf_counter() - t0
    arch = {k: getattr(base.config, k) for k in ("embed_dim", "enc_hidden", "latent_dim", "dec_hidden", "dec_layers")}
    t0 = time.perf_counter()
    scratch = MolVAE.fit(series, out=out / "scratch", max_minutes=args.minutes, epochs=1000, progress=False,
                         seed=args.seed, val_fraction=0.1, latent_prior_components=20, **arch)
    t_scratch = time.perf_counter() - t0
    rows = []
    for name, model, priors in (("base", base, ["auto"]), ("fine-tuned", tuned, ["model", "fitted"]),
                                ("from scratch", scratch, ["model", "fitted"])):
        for prior in priors:
            smiles = model.sample(args.samples, seed=args.seed, progress=False, prior=prior)["smiles"].tolist()
            label = {"auto": name, "model": f"{name}, N(0, I)", "fitted": f"{name}, fitted prior (default)"}[prior]
            rows.append(judge(label, smiles, held_out, series, scaffold))
    rows.append(judge("the series itself (80% vs held-out 20%)", series, held_out, series, scaffold))
    print(f"\ntraining wall time: fine-tuned {t_tuned:.0f} s, from scratch {t_scratch:.0f} s\n")
    cols = ["validity", "unique@1000", "novelty", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", "scaffold_hits"]
    print("| model | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for r in rows:
        print(f"| {r['model']} | " + " | ".join("–" if r[c] is None else f"{r[c]:.3f}" for c in cols) + " |")
    (out / "results.json").write_text(json.dumps({"scaffold": scaffold, "family": len(family), "rows": rows,
                                                   "train_s": {"fine-tuned": t_tuned, "scratch": t_scratch},
                                                   "settings": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
