#!/usr/bin/env bash
# The main job on a fresh machine: set up molvae, train a small model on the shipped sample,
# sample 1,000 molecules and report validity / uniqueness / novelty.
#
#   bash scripts/quickstart.sh            # a few minutes on a 2-core CPU; faster with a GPU
#
# Environment: MOLVAE_VENV (default .venv), QUICKSTART_EPOCHS (default 4), QUICKSTART_OUT (runs/quickstart).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MOLVAE_VENV:-.venv}
OUT=${QUICKSTART_OUT:-runs/quickstart}
EPOCHS=${QUICKSTART_EPOCHS:-4}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
MOLVAE="$VENV/bin/molvae"

echo "== training a small VAE on data/moses_sample.smi ($EPOCHS epochs) -> $OUT"
"$MOLVAE" train data/moses_sample.smi --out "$OUT" --preset small --epochs "$EPOCHS"
echo "== sampling 1,000 molecules"
"$MOLVAE" sample "$OUT" -n 1000 --out "$OUT/samples.csv"
echo "== done. Files:"
echo "   model + logs:      $OUT/ (config.json, vocab.json, model.safetensors, train_log.csv)"
echo "   training curves:   $OUT/training_curves.png"
echo "   rejected inputs:   $OUT/rejects.csv"
echo "   samples:           $OUT/samples.csv"
