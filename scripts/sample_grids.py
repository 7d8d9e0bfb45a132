"""Before and after: the first 24 samples of a model drawn as a molecule grid, raw and repair-aware.

    python scripts/sample_grids.py zinc250k --out docs/samples [--seed 0] [--prior-file OLD.safetensors]

Writes ``NAME_raw.png`` (the raw stream: every decoded string kept, as molvae sampled before repairs
were rejected; ``--prior-file`` samples it from another fitted prior, e.g. the one shipped before) and
``NAME_accepted.png`` (molvae's default: repaired strings drawn again), the same seed for both, with
QED, logP and SA under each molecule. Prints each grid's SMILES, marking the repaired ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a model directory or shipped name")
    ap.add_argument("--out", default="docs/samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-n", type=int, default=24)
    ap.add_argument("--prior-file", help="a latent_prior.safetensors to sample the raw grid from")
    args = ap.parse_args()

    import torch

    from molvae import MolVAE
    from molvae.figures import plot_molecule_grid
    from molvae.latent_flow import load_latent_prior

    torch.set_num_threads(1)
    model = MolVAE.load(args.model, device="cpu")
    name = Path(args.model).name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    default_prior = model.latent_prior
    if args.prior_file:
        model.latent_prior = load_latent_prior(args.prior_file, model.latent_dim)
    raw = model.sample(args.n, seed=args.seed, progress=False, keep_repaired=True)
    model.latent_prior = default_prior
    accepted = model.sample(args.n, seed=args.seed, progress=False)
    for label, df in (("raw", raw), ("accepted", accepted)):
        path = plot_molecule_grid(df["smiles"].tolist(), out / f"{name}_{label}.png", n=args.n)
        print(f"{path}: {label}, acceptance rate {df.attrs['acceptance_rate']:.3f}")
        for smi, rep in zip(df["smiles"], df["repaired"]):
            print(f"  {'R' if rep else ' '} {smi}")


if __name__ == "__main__":
    main()
