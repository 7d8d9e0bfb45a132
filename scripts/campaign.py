"""One stretch of a shipped model's training campaign: start or resume ``models/NAME`` for M minutes.

    python scripts/campaign.py zinc250k --minutes 100     # one per core: run the other model beside it
    python scripts/campaign.py moses --minutes 100
    python scripts/campaign.py zinc250k --minutes 100 --threads 2   # alone on the machine: both cores
    python scripts/campaign.py moses --status             # the learning curve so far, no training
    python scripts/campaign.py moses --restore            # on a new clone: val.smi, weights, ... for shipping

The campaign's settings are ``models/NAME/campaign.json``: the data file, the config, and optionally
``resume_settings`` (evaluation and checkpoint settings a resumed stretch may change) and ``init`` (a
model directory or shipped name whose weights and vocabulary the first stretch starts from; ``config``
then holds only the schedule). Its state is the run directory itself: ``checkpoint.pt`` (compact: bf16
optimizer moments), ``train_log.csv`` (one row per evaluation, with cumulative train and CPU minutes)
and the small files a resume needs. A stretch ends cleanly after ``--minutes`` of training (then
evaluates and writes the checkpoint), so commit the folder afterwards. ``--status`` prints the held-out
loss against CPU-hours and its relative improvement over the last CPU-hour: the campaign stops when
that falls below 2% (or at about 12 CPU-hours).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def status(run: Path) -> None:
    with open(run / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    print(f"{run}: {len(rows)} evaluations")
    print("| epoch | step | CPU-hours | val loss | val recon | val KL | val exact | prior valid | prior unique |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {float(r['epoch']):.3f} | {r['step']} | {float(r['cpu_minutes']) / 60:.2f} | "
              f"{float(r['val_loss']):.3f} | {float(r['val_recon']):.3f} | {float(r['val_kl']):.2f} | "
              f"{float(r['val_exact']):.3f} | {float(r['sample_validity']):.3f} | {float(r['sample_uniqueness']):.3f} |")
    hours = [float(r["cpu_minutes"]) / 60 for r in rows]
    loss = [float(r["val_loss"]) for r in rows]
    if len(rows) >= 2 and hours[-1] - hours[0] >= 1.0:
        ref = max(i for i, h in enumerate(hours) if h <= hours[-1] - 1.0)
        gain = (loss[ref] - loss[-1]) / loss[ref] / (hours[-1] - hours[ref])
        print(f"relative improvement of the held-out loss over the last CPU-hour: {100 * gain:.2f}% per CPU-hour "
              f"({'below' if gain < 0.02 else 'above'} the 2% stopping threshold); {hours[-1]:.2f} CPU-hours spent")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="the campaign: a folder of models/ with a campaign.json")
    ap.add_argument("--minutes", type=float, help="wall-clock minutes of training in this stretch")
    ap.add_argument("--status", action="store_true", help="print the learning curve and stop")
    ap.add_argument("--restore", action="store_true",
                    help="rebuild the run's files git leaves out (val.smi, train_hashes.npy, model.safetensors) "
                         "from its checkpoint and data, without training: for evaluating or shipping on a new machine")
    ap.add_argument("--data-dir", default=str(SHARED), help="where the campaign's data file lies")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: one campaign per core; 2 when it has the machine to itself)")
    args = ap.parse_args()
    run = ROOT / "models" / args.name
    spec = json.loads((run / "campaign.json").read_text())
    if args.status:
        status(run)
        return
    data = Path(args.data_dir) / spec["data"]
    if args.restore:
        sys.path.insert(0, str(ROOT))
        from molvae.train import restore_run_files

        print(f"restored {restore_run_files(data, run)}")
        return
    if not args.minutes or args.minutes <= 0:
        sys.exit("--minutes must be positive")
    if args.threads < 1:
        sys.exit("--threads must be at least 1")
    cmd = [sys.executable, "-m", "molvae", "train", str(data), "--out", str(run), "--threads", str(args.threads),
           "--set", f"max_minutes={args.minutes}"]
    if (run / "checkpoint.pt").exists():
        cmd.append("--resume")
        for key, value in spec.get("resume_settings", {}).items():  # RESUME_SETTINGS a stretch may change
            cmd += ["--set", f"{key}={json.dumps(value)}"]
    else:
        if "init" in spec:  # a campaign that continues another model's weights with a new schedule
            init = spec["init"]
            cmd += ["--from", str(ROOT / init) if (ROOT / init).is_dir() else init]
        else:
            cmd += ["--preset", spec.get("preset", "default")]
        for key, value in spec["config"].items():
            cmd += ["--set", f"{key}={json.dumps(value)}"]
    print(" ".join(cmd), flush=True)
    code = subprocess.call(cmd)
    if code == 0:
        status(run)
    sys.exit(code)


if __name__ == "__main__":
    main()
