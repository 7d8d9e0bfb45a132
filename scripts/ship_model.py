"""Copy a trained run into the package as a shipped model: ``molvae/pretrained/NAME/``.

    python scripts/ship_model.py models/moses --name moses --data ../shared/data/moses_train.csv.gz \
        --fit-prior 10 [--prior-molecules 50000] [--half]
    python scripts/ship_model.py models/moses --name moses --data ../shared/data/moses_train.csv.gz \
        --prior-kind flow --prior-only      # refit only the shipped copy's prior (its weights stay)

Writes config.json, vocab.json, model.safetensors (float16 with ``--half``: half the bytes; evaluate the
shipped copy, not the run), train_hashes.npy (novelty), likelihood.json / ood.json where the run has
them, train_log.csv, data_report.txt, optionally latent_prior.safetensors (a Gaussian mixture fitted to
the latent means of ``--prior-molecules`` random training molecules, none of the run's validation
molecules; or their aggregate posterior; or a normalizing flow trained on draws from their posteriors,
``--prior-kind flow``), and reference_encodings.json: the shipped weights' latent means of three fixed molecules,
which the test suite checks the shipped model still reproduces. MODEL_CARD.md is written by hand from
the evaluations of the shipped copy.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE_MOLECULES = ["CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "Cn1c(=O)c2c(ncn2C)n(C)c1=O"]
"""Paracetamol, ibuprofen, caffeine: every shipped model's encodings of these are recorded and tested."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the training run directory (model directory)")
    ap.add_argument("--name", required=True, help="shipped model name (molvae/pretrained/NAME)")
    ap.add_argument("--data", help="the run's training data (for --fit-prior)")
    ap.add_argument("--fit-prior", type=int, default=0, metavar="K", help="fit a K-component latent mixture prior")
    ap.add_argument("--prior-molecules", type=int, default=50_000)
    ap.add_argument("--prior-kind", choices=["mixture", "aggregate", "flow"], default="mixture",
                    help="aggregate: the --prior-molecules' posteriors themselves (stored in float16); flow: a "
                         "normalizing flow trained on draws from them")
    ap.add_argument("--prior-scale", type=float, default=1.0, help="aggregate, flow: their widths times this")
    ap.add_argument("--prior-only", action="store_true",
                    help="only refit the prior of the shipped copy (molvae/pretrained/NAME), keeping its weights")
    ap.add_argument("--half", action="store_true", help="store the weights in float16")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import torch

    from molvae import MolVAE

    torch.set_num_threads(1)
    run = Path(args.run)
    dest = ROOT / "molvae" / "pretrained" / args.name
    if not args.prior_only:
        copy_run(run, dest, args.half)
    shipped = MolVAE.load(dest, device="cpu")
    if args.fit_prior or args.prior_kind != "mixture":  # fitted to the shipped weights' posteriors
        if not args.data:
            sys.exit("--fit-prior needs --data (the run's training data)")
        from molvae.data import read_smiles
        from molvae.latent_mixture import LATENT_PRIOR_FILE

        smiles = read_smiles(args.data)["input"].tolist()
        held_out = set((run / "val.smi").read_text().split()) if (run / "val.smi").exists() else set()
        pick = np.random.default_rng(args.seed).permutation(len(smiles))
        chosen = [smiles[i] for i in pick[: args.prior_molecules + len(held_out)] if smiles[i] not in held_out]
        prior = shipped.fit_latent_prior(chosen[: args.prior_molecules], components=args.fit_prior,
                                         seed=args.seed, save=False, kind=args.prior_kind,
                                         scale=args.prior_scale, progress=True)
        if args.prior_kind == "aggregate":  # one component per molecule: half precision keeps the file small
            prior.weights, prior.means, prior.scales = prior.weights.float(), prior.means.half(), prior.scales.half()
        elif args.prior_kind == "mixture":
            prior.weights, prior.means, prior.chol = (t.float() for t in (prior.weights, prior.means, prior.chol))
        prior.save(dest / LATENT_PRIOR_FILE)
    if args.prior_only:
        return
    z = shipped.encode(REFERENCE_MOLECULES)
    (dest / "reference_encodings.json").write_text(json.dumps(
        {"molecules": REFERENCE_MOLECULES, "latent_means": z.round(6).tolist()}, indent=1) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(dest.iterdir())}
    print(json.dumps({"shipped": str(dest), "files": sizes}, indent=2))


def copy_run(run: Path, dest: Path, half: bool) -> None:
    """The run's model directory copied to ``dest`` (weights in float16 with ``half``), without val.smi."""
    from safetensors.torch import load_file, save_file

    from molvae import MolVAE

    model = MolVAE.load(run, device="cpu")
    if dest.exists():
        shutil.rmtree(dest)
    model.path = run  # so that save() copies train_log.csv beside the model
    model.save(dest)
    (dest / "val.smi").unlink(missing_ok=True)  # the held-out set is not shipped
    weights = dest / "model.safetensors"
    if half:
        tensors = {k: v.half() for k, v in load_file(str(weights)).items()}
        save_file(tensors, str(weights), metadata={"format": "molvae-1", "dtype": "float16"})
    for name in ("data_report.txt", "training_curves.png", "metrics.json"):
        if (run / name).exists():
            shutil.copy(run / name, dest / name)
    report = dest / "data_report.txt"
    if report.exists():  # the file's name, not where it lay on the training machine
        report.write_text(re.sub(r"(?m)^/\S*/", "", report.read_text()))


if __name__ == "__main__":
    main()
