"""Write a shipped model's MODEL_CARD.md from its campaign and its measured evaluations.

    python scripts/model_card.py zinc250k --run models/zinc250k --eval eval_zinc.json [--moses bench/metrics.json] \
        [--status "interim: the campaign continues"]

Reads the campaign (models/NAME: campaign.json, config.json, train_log.csv), the shipped copy's
likelihood.json (the run's where the shipped copy has none), the evaluation of the *shipped* copy
(scripts/eval_model.py --json; and for a MOSES model scripts/bench_moses.py's metrics.json) and its
data_report.txt, and writes molvae/pretrained/NAME/MODEL_CARD.md: data and cleaning counts, settings,
CPU-hours and hardware, the measured metrics, the learning curve.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = ("embed_dim", "enc_hidden", "enc_layers", "latent_dim", "dec_hidden", "dec_layers", "max_len")
TRAINING = ("beta", "kl_warmup_epochs", "free_bits", "lr", "batch_size", "epochs", "val_fraction", "seed")
MOSES_KEYS = ("validity", "unique@1000", "unique@10000", "FCD/Test", "FCD/TestSF", "SNN/Test", "SNN/TestSF",
              "Frag/Test", "Frag/TestSF", "Scaf/Test", "Scaf/TestSF", "IntDiv", "IntDiv2", "Filters", "novelty")


def _curve(rows: list[dict]) -> list[str]:
    lines = ["| epoch | step | CPU-hours | val loss | val recon | val KL | val exact (1,000) | prior valid | prior unique |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {float(r['epoch']):.2f} | {r['step']} | {float(r['cpu_minutes']) / 60:.2f} | "
                     f"{float(r['val_loss']):.3f} | {float(r['val_recon']):.3f} | {float(r['val_kl']):.2f} | "
                     f"{float(r['val_exact']):.3f} | {float(r['sample_validity']):.3f} | "
                     f"{float(r['sample_uniqueness']):.3f} |")
    return lines


def _fmt(value) -> str:
    return "–" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


def _prior_description(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta, names = fh.metadata() or {}, set(fh.keys())
        n = fh.get_slice("weights").get_shape()[0] if "weights" in names else None
    if meta.get("format") == "molvae-latent-flow-1":
        return f"a normalizing flow fitted to {int(meta.get('n_fitted', 0)):,} training molecules' posteriors"
    if "scales" in names:
        return f"the aggregate posterior of {n:,} training molecules (one Gaussian per molecule)"
    return f"a {n}-component Gaussian mixture over training molecules' latent means"


def _moses_table(moses: dict, raw: dict | None) -> list[str]:
    """MOSES metrics of the default output (b) and, when given, of the raw stream with repairs invalid (a)."""
    n = moses.get("n_samples", 30000)
    out = ["", f"MOSES metrics of {n:,} prior samples against MOSES test (Test) and scaffold test (TestSF), novelty "
           "against MOSES train (molvae's metrics, which match MOSES's code): (b) molvae's default output, "
           f"{n:,} accepted samples" + ("; (a) the MOSES protocol on the raw stream, SELFIES-repaired strings "
                                        "counted invalid (validity = acceptance rate)" if raw else "") + ":", ""]
    if raw:
        out += ["| metric | (a) repaired = invalid | (b) accepted samples |", "|---|---|---|"]
        out += [f"| {k} | {_fmt(raw.get(k))} | {_fmt(moses.get(k))} |" for k in MOSES_KEYS if k in moses]
    else:
        out += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(moses.get(k))} |" for k in MOSES_KEYS if k in moses]
    return out


def card(name: str, run: Path, evaluation: dict, moses: dict | None, status: str,
         earlier: tuple[float, str] | None, threads: str, moses_raw: dict | None = None) -> str:
    config = json.loads((run / "config.json").read_text())
    campaign = json.loads((run / "campaign.json").read_text())
    with open(run / "train_log.csv") as fh:
        log = list(csv.DictReader(fh))
    last = log[-1]
    shipped = ROOT / "molvae" / "pretrained" / name  # ship_model.py wrote it, without the training machine's paths
    cleaning = (shipped / "data_report.txt").read_text().strip()
    bounds = next((d / "likelihood.json" for d in (shipped, run) if (d / "likelihood.json").is_file()), None)
    likelihood = json.loads(bounds.read_text()) if bounds else {}  # the shipped copy's, where ship computed it
    state = f"`{run.resolve().relative_to(ROOT)}/`" if run.resolve().is_relative_to(ROOT) else f"`{run.name}/`"
    if campaign.get("init"):
        state += f", continuing `{campaign['init']}/`"
    out = [f"# `{name}`: a SELFIES VAE trained on {campaign['data']}", "",
           f"Status: {status}", "",
           "```python", "from molvae import MolVAE", "",
           f'model = MolVAE.pretrained("{name}")      # or: molvae sample {name} -n 1000', "```", "",
           "## Data", "",
           f"`{campaign['data']}` (as `molvae data get` downloads it), cleaned by molvae's standard pipeline "
           f"(RDKit parse and sanitize, canonical SMILES, SELFIES within the maximum length):", "",
           "```", cleaning, "```", "",
           f"{100 * config['val_fraction']:.2f}% of the kept molecules are held out for validation (never trained "
           "on); the held-out set is not shipped.", "",
           "## Settings", "",
           "| setting | value |", "|---|---|"]
    out += [f"| {k} | {config.get(k)} |" for k in ARCH + TRAINING if k in config]
    hours = float(last["cpu_minutes"]) / 60
    total = (f"{hours + earlier[0]:.2f} CPU-hours in all: {earlier[0]:.2f} in the runs this campaign continues "
             f"({earlier[1]}), then {hours:.2f}" if earlier else f"{hours:.2f}")
    out += ["", "## Compute", "",
            f"{total} CPU-hours ({float(last['train_minutes']) / 60:.2f} h of training "
            f"wall clock) over {int(last['step']):,} steps, {float(last['epoch']):.2f} epochs, on shared 2-core "
            "x86-64 VMs (Intel Xeon and AMD EPYC machines both served; which ran each stretch was not "
            f"recorded), {threads}, bf16 autocast; trained in "
            "stretches that each resumed the last one exactly (`scripts/campaign.py`, state in "
            f"{state}).", "",
            "## Measured metrics (of the shipped float16 weights)", "",
            "| measure | value |", "|---|---|",
            f"| greedy exact reconstruction, {evaluation['n_heldout']:,} held-out molecules | "
            f"{evaluation['exact_reconstruction']:.4f} |",
            f"| prior samples ({evaluation['n_samples']:,}, {evaluation['prior']} prior): validity | "
            f"{evaluation['validity']:.4f} |",
            f"| uniqueness | {evaluation['uniqueness']:.4f} |",
            f"| novelty (against the training split) | {evaluation['novelty']:.4f} |"]
    if evaluation.get("acceptance_rate") is not None:
        out.append(f"| acceptance rate: decoded token strings that needed no SELFIES repair (the others are "
                   f"drawn again) | {evaluation['acceptance_rate']:.4f} |")
    if evaluation.get("fcd") is not None:
        out.append(f"| FCD of those samples against `{evaluation['fcd_ref']}` | {evaluation['fcd']:.3f} |")
    if likelihood:
        out.append(f"| held-out IWAE bound (nats/molecule; {likelihood.get('n', 0):,} held-out molecules, "
                   f"k={likelihood.get('k')}) | {_fmt(likelihood.get('iwae'))} |")
    prior_file = shipped / "latent_prior.safetensors"
    if prior_file.exists():
        out += ["", f"Default prior: {_prior_description(prior_file)} (`prior='model'` samples N(0, I) instead)."]
    if moses:
        out += _moses_table(moses, moses_raw)
    out += ["", "## Learning curve (held-out loss and reconstruction at each evaluation)", ""] + _curve(log)
    out += ["", "Licence of the data: ZINC (free for everyone, Irwin et al.) and MOSES (MIT). The weights are "
            "shipped with molvae under its licence.", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("--run", type=Path, required=True, help="the campaign folder, models/NAME")
    ap.add_argument("--eval", type=Path, required=True, help="scripts/eval_model.py --json of the shipped copy")
    ap.add_argument("--moses", type=Path, help="scripts/bench_moses.py's metrics.json of the shipped copy")
    ap.add_argument("--status", default="final")
    ap.add_argument("--threads", default="one torch thread",
                    help="how many torch threads the stretches used, for the card")
    ap.add_argument("--earlier-hours", type=float, help="CPU-hours of the runs the campaign continues (its init)")
    ap.add_argument("--earlier", default="", help="what those runs were, for the card")
    args = ap.parse_args()
    moses = json.loads(args.moses.read_text()) if args.moses else None
    raw_file = args.moses.parent / "metrics_protocol_a.json" if args.moses else None
    moses_raw = json.loads(raw_file.read_text()) if raw_file and raw_file.exists() else None
    earlier = (args.earlier_hours, args.earlier) if args.earlier_hours else None
    text = card(args.name, args.run, json.loads(args.eval.read_text()), moses, args.status, earlier, args.threads,
                moses_raw)
    dest = ROOT / "molvae" / "pretrained" / args.name / "MODEL_CARD.md"
    dest.write_text(text)
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
