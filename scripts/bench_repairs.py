"""Which sampled SELFIES strings did the decoder repair, and what do they do to the sample's metrics?

Samples ``-n`` molecules from a model with repairs kept (the raw stream), then flags each token string
by two criteria:

- round trip: ``selfies.encoder(selfies.decoder(s)) == s`` (what molvae rejects by default);
- lifted constraints (Skinnider 2024): decode with every SELFIES valence cap at 999 and parse the
  SMILES with RDKit; a string that needs the caps to be valid is one a SMILES model would have written
  invalid (the process-wide constraints are restored afterwards).

and scores four subsets against a reference set with molvae's MOSES metrics: all samples, those the
round trip accepts, those the lifted-constraints test accepts, and those the round trip rejects.
Prints the settings, the machine, each criterion's cost per molecule and a markdown table.

    python scripts/bench_repairs.py moses -n 3000 --ref moses-test
    python scripts/bench_repairs.py zinc250k -n 3000 --ref models/zinc250k/val.smi --prior model
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchenv import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = [("FCD/Test", "FCD"), ("SNN/Test", "SNN"), ("Frag/Test", "Frag"), ("Scaf/Test", "Scaf"),
        ("IntDiv", "IntDiv"), ("Filters", "Filters"), ("novelty", "novelty"), ("unique@1000", "unique@1k"),
        ("SA", "SA W1"), ("QED", "QED W1"), ("logP", "logP W1")]


def lifted_constraints_valid(selfies_list: list[str]) -> list[bool]:
    """Skinnider's criterion: valid SMILES when decoded with every valence cap lifted."""
    import selfies as sf

    from molvae.chem import parse_smiles, quiet_rdkit

    saved = sf.get_semantic_constraints()
    try:
        sf.set_semantic_constraints({k: 999 for k in saved})
        smiles = [sf.decoder(s) if s else "" for s in selfies_list]
    finally:
        sf.set_semantic_constraints(saved)
    with quiet_rdkit():
        return [bool(s) and parse_smiles(s)[0] is not None for s in smiles]


def round_trip_consistent(selfies_list: list[str], decoded: list[str]) -> list[bool]:
    """molvae's criterion, given the decoder's SMILES (which post-processing computes anyway)."""
    from molvae.vocab import selfies_repaired

    return [bool(s) and not selfies_repaired(s, smi) for s, smi in zip(selfies_list, decoded)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a model directory or shipped name")
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--ref", default="moses-test", help="named reference set or a SMILES file")
    ap.add_argument("--prior", default="auto", help="auto, model or fitted (MolVAE.sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the table and metrics.json here")
    args = ap.parse_args()

    import torch

    from molvae import MolVAE
    from molvae.metrics import evaluate

    torch.set_num_threads(args.threads)
    print(f"settings: {vars(args)}\nmachine: {machine()}", flush=True)
    model = MolVAE.load(args.model)  # a directory or a shipped model's name
    t0 = time.perf_counter()
    df = model.sample(args.n, seed=args.seed, progress=False, prior=args.prior, keep_repaired=True)
    sample_s = time.perf_counter() - t0
    selfies = df["selfies"].tolist()
    from molvae.vocab import selfies_to_smiles

    decoded = [selfies_to_smiles(s) for s in selfies]
    t0 = time.perf_counter()
    round_trip = round_trip_consistent(selfies, decoded)
    rt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lifted = lifted_constraints_valid(selfies)
    lift_s = time.perf_counter() - t0
    n = len(selfies)
    print(f"sampling {1000 * sample_s / n:.2f} ms/molecule; added by each check (beyond the decoding sampling "
          f"does anyway): round trip {1000 * rt_s / n:.3f} ms/molecule, lifted constraints "
          f"{1000 * lift_s / n:.3f} ms/molecule")
    print(f"round trip accepts {sum(round_trip) / n:.4f}, lifted constraints {sum(lifted) / n:.4f}, "
          f"round trip but not lifted: {sum(a and not b for a, b in zip(round_trip, lifted))}")
    smiles = df["smiles"].tolist()
    subsets = {"all": [True] * n, "round trip accepts": round_trip, "lifted accepts": lifted,
               "round trip rejects": [not r for r in round_trip],
               "lifted accepts, round trip rejects": [a and not b for a, b in zip(lifted, round_trip)]}
    rows = {}
    for name, keep in subsets.items():
        chosen = [s for s, k in zip(smiles, keep) if k]
        if len(chosen) < 100:
            continue
        m = evaluate(chosen, ref=args.ref, train=model.train_hashes, n_jobs=1, progress=False)
        rows[name] = {"n": len(chosen), **{k: m.get(k) for k, _ in KEYS}}
        print(name, json.dumps(rows[name]), flush=True)
    head = "| subset | n | " + " | ".join(h for _, h in KEYS) + " |"
    lines = [head, "|---|" + "---:|" * (len(KEYS) + 1)]
    for name, r in rows.items():
        cells = " | ".join("-" if r[k] is None else f"{r[k]:.3f}" for k, _ in KEYS)
        lines.append(f"| {name} | {r['n']} | {cells} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n")
        (out / "metrics.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
