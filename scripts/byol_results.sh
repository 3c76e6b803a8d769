#!/usr/bin/env bash
# BYOL on synthetic_city, end to end, into docs/results/byol.md:
#   1. BYOL pretraining of the fcn8s-r18 backbone on synthetic_city's 200 unlabelled training frames
#      (experiment byol_r18_synthetic-city-unlabeled-128x128, seed 0);
#   2. export of the online backbone (python -m leseg.export);
#   3. FCN-8s R18 fine-tuning on PERCENT % of the labelled frames (a seeded random subset per seed)
#      from the BYOL backbone and from random initialisation, same recipe, seeds SEEDS
#      (experiment supervised_fcn8s-r18_synthetic-city-128x256);
#   4. python -m leseg.aggregate over the fine-tuning runs: mIoU mean ± std over seeds.
#
#   bash scripts/byol_results.sh              # the full setting (CPU: roughly 1-2 hours on 2 cores)
#   SMOKE=1 bash scripts/byol_results.sh      # a tiny setting that checks the pipeline in minutes;
#                                             # writes <OUT>/byol.md, never docs/results/
#
# Environment knobs (defaults in brackets): PERCENT [10], SEEDS ["0 1 2"], BYOL_EPOCHS [100],
# FT_STEPS [600], OUT [outputs/byol_results/<timestamp>; an existing OUT reuses its finished pretraining], RESULTS [docs/results/byol.md],
# PY [.venv/bin/python], EXTRA [extra Hydra overrides for every run, e.g. trainer=gpu].
# The dataset goes to $LESEG_DATA_DIR (default data/), generated on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
PERCENT=${PERCENT:-10}
SEEDS=${SEEDS:-0 1 2}
BYOL_EPOCHS=${BYOL_EPOCHS:-100}
FT_STEPS=${FT_STEPS:-600}
OUT=${OUT:-outputs/byol_results/$(date +%Y-%m-%d_%H-%M-%S)}
RESULTS=${RESULTS:-docs/results/byol.md}
DATA_DIR=${LESEG_DATA_DIR:-data}
EXTRA=${EXTRA:-}
FT_VAL_EVERY=100                              # validate every 100 fine-tuning steps

COMMON=(logger=csv extras.print_config=false "paths.data_dir=$DATA_DIR")
if [[ "${SMOKE:-0}" == "1" ]]; then
  # tiny dataset in its own folder, one-epoch BYOL, two fine-tuning steps per run
  DATA_DIR="$OUT/data"
  PERCENT=50 SEEDS="0 1" BYOL_EPOCHS=1 FT_STEPS=2 FT_VAL_EVERY=2
  RESULTS="$OUT/byol.md"
  COMMON=(logger=csv extras.print_config=false "paths.data_dir=$DATA_DIR"
          data.synthetic.num_train=8 data.synthetic.num_val=4 data.synthetic.height=64
          data.synthetic.width=128 data.num_workers=0 data.persistent_workers=false)
  BYOL_SMOKE=(data.batch_size=4 data.views.size=[32,32] method.projector.hidden_dim=64
              method.projector.out_dim=32 method.predictor.hidden_dim=64 data.probe.num_images=4
              callbacks.linear_probe.every_n_epochs=1)
  FT_SMOKE=(data.batch_size=2 data.train_transforms.crop_size=[64,128] trainer.limit_val_batches=1
            trainer.limit_test_batches=1)
else
  BYOL_SMOKE=()
  FT_SMOKE=()
fi
# shellcheck disable=SC2206
EXTRA_ARGS=($EXTRA)
mkdir -p "$OUT"
SEED_LIST=$(echo "$SEEDS" | tr ' ' ',')
FT_EXPERIMENT=supervised_fcn8s-r18_synthetic-city-128x256

# A rerun with the same OUT continues: a finished pretraining (its metrics.json is written last,
# after the final checkpoint, with the epoch count) is reused instead of being trained again.
if [[ -f "$OUT/pretrain/metrics.json" && -f "$OUT/pretrain/checkpoints/last.ckpt" ]] &&
   grep -qx -- "- trainer.max_epochs=$BYOL_EPOCHS" "$OUT/pretrain/.hydra/overrides.yaml" 2>/dev/null; then
  echo "== 1/4 BYOL pretraining: reusing the finished run in $OUT/pretrain"
else
  echo "== 1/4 BYOL pretraining ($BYOL_EPOCHS epochs) -> $OUT/pretrain"
  "$PY" train.py experiment=byol_r18_synthetic-city-unlabeled-128x128 seed=0 \
    "trainer.max_epochs=$BYOL_EPOCHS" "hydra.run.dir=$OUT/pretrain" \
    "${COMMON[@]}" "${BYOL_SMOKE[@]}" "${EXTRA_ARGS[@]}"
fi

echo "== 2/4 export of the online backbone"
WEIGHTS=$("$PY" -m leseg.export "$OUT/pretrain/checkpoints/last.ckpt" --out "$OUT/byol_r18_backbone.pth")

echo "== label fractions: $PERCENT % per seed ($SEEDS)"
# shellcheck disable=SC2086
"$PY" -m leseg.data.fractions --dataset cityscapes --root "$DATA_DIR/synthetic_city" \
  --percents "$PERCENT" --seeds $SEEDS --out "$DATA_DIR/splits/synthetic_city"

echo "== 3/4 fine-tuning: random vs BYOL initialisation, seeds $SEED_LIST"
for init in random byol; do
  weights=null
  [[ $init == byol ]] && weights="$WEIGHTS"
  "$PY" train.py -m "experiment=$FT_EXPERIMENT" "seed=$SEED_LIST" "data.split=${PERCENT}pct" \
    "experiment_name=${FT_EXPERIMENT}_init-$init" "model.backbone.weights=$weights" \
    "trainer.max_steps=$FT_STEPS" "trainer.val_check_interval=$FT_VAL_EVERY" \
    "hydra.sweep.dir=$OUT/finetune/$init" "${COMMON[@]}" "${FT_SMOKE[@]}" "${EXTRA_ARGS[@]}"
done

echo "== 4/4 aggregate -> $RESULTS"
TABLE=$("$PY" -m leseg.aggregate "$OUT/finetune" --metrics test/mIoU val/mIoU_best)
PRETRAIN=$("$PY" - "$OUT/pretrain/metrics.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"final BYOL loss {m.get('train/loss', float('nan')):.4f}, "
      f"linear probe mIoU {100 * m.get('probe/mIoU', float('nan')):.2f} %, "
      f"probe pixel accuracy {100 * m.get('probe/aAcc', float('nan')):.2f} %")
EOF
)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
TORCH=$("$PY" -c 'import torch; print(torch.__version__)')
SETTING=""
# the knobs that differ from their defaults, so the page names the command that reproduces it
[[ "$BYOL_EPOCHS" != 100 ]] && SETTING+="BYOL_EPOCHS=$BYOL_EPOCHS "
[[ "$PERCENT" != 10 ]] && SETTING+="PERCENT=$PERCENT "
[[ "$SEEDS" != "0 1 2" ]] && SETTING+="SEEDS=\"$SEEDS\" "
[[ "$FT_STEPS" != 600 ]] && SETTING+="FT_STEPS=$FT_STEPS "
NOTE=""
if [[ "${SMOKE:-0}" == "1" ]]; then
  SETTING="SMOKE=1 "
  NOTE="**SMOKE setting** (8 tiny frames, a few steps): checks the pipeline only; the numbers mean nothing."
fi
mkdir -p "$(dirname "$RESULTS")"
cat > "$RESULTS.tmp" <<EOF
# BYOL pretraining vs random initialisation on synthetic_city (measured)

Produced by \`${SETTING}bash scripts/byol_results.sh\` on $(date +%Y-%m-%d) (commit $COMMIT, $(uname -m),
torch $TORCH, extra overrides: \`${EXTRA:-none}\`). Numbers are what this run measured, nothing else.
$NOTE

- **Pretraining**: BYOL (paper views, projector/predictor 4096/256, LARS lr 0.025, τ 0.99 → 1
  cosine) of a ResNet-18 on the unlabelled synthetic_city training frames, $BYOL_EPOCHS epochs, seed 0:
  $PRETRAIN.
- **Fine-tuning**: FCN-8s R18 on $PERCENT % of the labelled training frames (a seeded random subset,
  a different one per seed), SGD lr 0.01, momentum 0.9, weight decay 1e-5, poly decay, $FT_STEPS
  steps, batch 8, crops 128x256; experiment \`$FT_EXPERIMENT\` with
  \`model.backbone.weights=<BYOL export>\` (\`_init-byol\`) or \`null\` (\`_init-random\`).
- **Metric**: mIoU (%) on the synthetic_city validation frames, mean ± sample std over seeds
  ($SEEDS). \`val/mIoU_best\` is the best validation mIoU during training; \`test/mIoU\` is the
  checkpoint chosen by it, evaluated on the same frames (synthetic_city has no separate test set,
  as in the reference project, which selects on val).

$TABLE
EOF
mv "$RESULTS.tmp" "$RESULTS"
echo "wrote $RESULTS"
