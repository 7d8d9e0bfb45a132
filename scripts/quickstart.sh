#!/usr/bin/env bash
# The main job on a fresh machine: set up molvae, then use the shipped models.
#
#   bash scripts/quickstart.sh            # minutes on a 2-core CPU after the install
#
# With the shipped models (molvae/pretrained/): sample 1,000 molecules from each and print validity,
# uniqueness, novelty and MOSES metrics; a short QED optimization (300 oracle calls) with the zinc250k
# model; an HTML report. Without shipped models (a checkout older than them), or with
# QUICKSTART_TRAIN=1, it trains the small preset on the shipped 15,000-molecule sample instead.
#
# Environment: MOLVAE_VENV (default .venv), QUICKSTART_OUT (runs/quickstart), QUICKSTART_EPOCHS (4),
# QUICKSTART_TRAIN (0).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MOLVAE_VENV:-.venv}
OUT=${QUICKSTART_OUT:-runs/quickstart}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
MOLVAE="$VENV/bin/molvae"
SHIPPED=$("$VENV/bin/python" -c "from molvae import MolVAE; print(' '.join(MolVAE.available_pretrained()))")
mkdir -p "$OUT"

if [ -z "$SHIPPED" ] || [ "${QUICKSTART_TRAIN:-0}" = 1 ]; then
    EPOCHS=${QUICKSTART_EPOCHS:-4}
    echo "== training a small VAE on data/moses_sample.smi ($EPOCHS epochs) -> $OUT/model"
    "$MOLVAE" train data/moses_sample.smi --out "$OUT/model" --preset small --epochs "$EPOCHS"
    SHIPPED="$OUT/model"
fi

start=$(date +%s)
for model in $SHIPPED; do
    name=$(basename "$model")
    echo "== $name: sampling 1,000 molecules"
    "$MOLVAE" sample "$model" -n 1000 --out "$OUT/$name-samples.csv" --quiet
    echo "== $name: MOSES metrics of the samples (against the MOSES test set's shipped statistics)"
    "$MOLVAE" evaluate "$OUT/$name-samples.csv" --ref moses-test --out "$OUT/$name-metrics" --quiet
done
OPT_MODEL=$(echo "$SHIPPED" | tr ' ' '\n' | grep -m1 zinc250k || echo "$SHIPPED" | cut -d' ' -f1)
echo "== optimizing QED with $(basename "$OPT_MODEL") (300 oracle calls)"
rm -rf "$OUT/optimize"  # a fresh study each time the quick start runs
"$MOLVAE" optimize "$OPT_MODEL" --objective qed --budget 300 --out "$OUT/optimize" --quiet
echo "== HTML report of $(basename "$OPT_MODEL")"
"$MOLVAE" report "$OPT_MODEL" --out "$OUT/report" --n-sample 1000 --quiet
echo "== done in $(( $(date +%s) - start )) s after the install. Files in $OUT/:"
echo "   samples and metrics:  *-samples.csv, *-metrics/"
echo "   optimization:         optimize/ (calls.csv, best.csv, plots)"
echo "   report:               report/index.html"
