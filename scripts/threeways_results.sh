#!/usr/bin/env bash
# Three Ways (Hoyer et al., CVPR 2021) on synthetic_city, end to end, into docs/results/threeways.md:
#   1. self-supervised depth (SDE) from the frame sequences, trained once (experiment
#      ssdepth_depthnet-r18-d16_synthetic-city-sequence-64x128, seed 0), evaluated against the
#      synthetic ground-truth disparity next to a constant-depth prediction (abs rel, median scaled);
#   2. segmentation with SPLIT labeled frames of the same 100, over seeds SEEDS, three rows:
#      random init (supervised_depthseg-r18-d16_synthetic-city-semi-64x128), depth transfer
#      (transfer_depthseg-...) and transfer + DepthMix mean teacher (depthmix_depthseg-...), the
#      last two with model.init_from_depth=<the depth run's last.ckpt>; CLASSMIX=1 adds the ClassMix
#      mean-teacher baseline from random init (classmix_depthseg-...);
#   3. python -m leseg.aggregate over the segmentation runs (mean ± sample std over seeds), and the
#      page with the numbers as measured.
#
#   bash scripts/threeways_results.sh            # the full setting (CPU, 2 cores: see the estimate
#                                                # printed at the start)
#   SMOKE=1 bash scripts/threeways_results.sh    # tiny setting that checks the pipeline in minutes;
#                                                # writes <OUT>/threeways.md, never docs/results/
#
# Knobs (defaults in brackets): SPLIT [10], SEEDS ["0 1 2"], CLASSMIX [0], OUT
# [outputs/threeways_results/<timestamp>], RESULTS [docs/results/threeways.md], PY [.venv/bin/python],
# EXTRA [Hydra overrides for every run, e.g. trainer=gpu]. Rerunning with the same OUT keeps the
# depth run and every finished sweep (one metrics.json per job). The dataset goes to $LESEG_DATA_DIR (default data/).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
SPLIT=${SPLIT:-10}
SEEDS=${SEEDS:-0 1 2}
CLASSMIX=${CLASSMIX:-0}
OUT=${OUT:-outputs/threeways_results/$(date +%Y-%m-%d_%H-%M-%S)}
RESULTS=${RESULTS:-docs/results/threeways.md}
DATA_DIR=${LESEG_DATA_DIR:-data}
EXTRA=${EXTRA:-}

COMMON=(logger=csv extras.print_config=false "paths.data_dir=$DATA_DIR")
DEPTH_SMOKE=()
SEG_SMOKE=()
if [[ "${SMOKE:-0}" == "1" ]]; then
  # tiny dataset in its own folder, two steps per run, one validation batch
  DATA_DIR="$OUT/data"
  SPLIT=4 SEEDS="0 1"
  RESULTS="$OUT/threeways.md"
  COMMON=(logger=csv extras.print_config=false "paths.data_dir=$DATA_DIR"
          data.synthetic.num_train=8 data.synthetic.num_val=4 data.num_workers=0
          data.persistent_workers=false trainer.max_epochs=1 trainer.limit_train_batches=2
          trainer.num_sanity_val_steps=0)
  DEPTH_SMOKE=(data.batch_size=2 data.val_batch_size=2 data.max_val_samples=2
               trainer.limit_test_batches=1)
  SEG_SMOKE=(data.batch_size=2 data.unlabeled_batch_size=2 data.val_batch_size=2
             trainer.limit_val_batches=1 trainer.limit_test_batches=1)
fi
# shellcheck disable=SC2206
EXTRA_ARGS=($EXTRA)
mkdir -p "$OUT"
SEED_LIST=$(echo "$SEEDS" | tr ' ' ',')
DEPTH_EXP=ssdepth_depthnet-r18-d16_synthetic-city-sequence-64x128
RANDOM_EXP=supervised_depthseg-r18-d16_synthetic-city-semi-64x128
TRANSFER_EXP=transfer_depthseg-r18-d16_synthetic-city-semi-64x128
DEPTHMIX_EXP=depthmix_depthseg-r18-d16_synthetic-city-semi-64x128
CLASSMIX_EXP=classmix_depthseg-r18-d16_synthetic-city-semi-64x128

if [[ -f "$OUT/depth/metrics.json" && -f "$OUT/depth/checkpoints/last.ckpt" ]]; then
  echo "== 1/3 self-supervised depth: done before, kept ($OUT/depth)"
else
  echo "== 1/3 self-supervised depth -> $OUT/depth"
  "$PY" train.py "experiment=$DEPTH_EXP" seed=0 "hydra.run.dir=$OUT/depth" \
    "${COMMON[@]}" "${DEPTH_SMOKE[@]}" "${EXTRA_ARGS[@]}"
fi
CKPT="$OUT/depth/checkpoints/last.ckpt"

echo "== 2/3 segmentation with $SPLIT labels, seeds $SEED_LIST"
# One multirun per experiment (Hydra composes a sweep's base config without the swept experiment,
# so keys that only the experiment brings could not be overridden in a sweep over experiments).
# A sweep directory that already holds one metrics.json per seed is kept (rerun with the same OUT).
N_SEEDS=$(echo "$SEEDS" | wc -w)
sweep() {  # sweep <name> <experiment> [overrides...]
  local name=$1 exp=$2
  shift 2
  if [[ -d "$OUT/seg/$name" && $(find "$OUT/seg/$name" -name metrics.json | wc -l) -ge $N_SEEDS ]]; then
    echo "   $name: done before, kept"
    return
  fi
  echo "   $name: $exp"
  "$PY" train.py -m "experiment=$exp" "seed=$SEED_LIST" "data.split=$SPLIT" \
    "hydra.sweep.dir=$OUT/seg/$name" "$@" "${COMMON[@]}" "${SEG_SMOKE[@]}" "${EXTRA_ARGS[@]}"
}
sweep random "$RANDOM_EXP"
sweep transfer "$TRANSFER_EXP" "model.init_from_depth=$CKPT"
sweep depthmix "$DEPTHMIX_EXP" "model.init_from_depth=$CKPT"
ROWS=("$RANDOM_EXP" "$TRANSFER_EXP" "$DEPTHMIX_EXP")
if [[ "$CLASSMIX" == "1" ]]; then
  sweep classmix "$CLASSMIX_EXP"
  ROWS+=("$CLASSMIX_EXP")
fi

echo "== 3/3 aggregate -> $RESULTS"
"$PY" -m leseg.aggregate "$OUT/seg" --metrics test/mIoU val/mIoU_best > /dev/null
SETTING=""
[[ "$SPLIT" != 10 ]] && SETTING+="SPLIT=$SPLIT "
[[ "$SEEDS" != "0 1 2" ]] && SETTING+="SEEDS=\"$SEEDS\" "
[[ "$CLASSMIX" != 0 ]] && SETTING+="CLASSMIX=$CLASSMIX "
[[ "${SMOKE:-0}" == "1" ]] && SETTING="SMOKE=1 "
"$PY" - "$OUT" "$RESULTS" "${SETTING}bash scripts/threeways_results.sh" "${EXTRA:-none}" \
  "${SMOKE:-0}" "$SPLIT" "${ROWS[@]}" <<'PY'
"""Write the results page from the depth run's and the segmentation runs' metrics.json files."""
import datetime
import json
import platform
import sys
from pathlib import Path

from leseg.aggregate import aggregate, load_runs, per_seed, source_commit

out, results, command, extra, smoke, split, *rows = sys.argv[1:]
out = Path(out)
metric = "test/mIoU"
depth = json.loads((out / "depth" / "metrics.json").read_text())["metrics"]
runs = load_runs(out / "seg")
agg = {r["experiment"]: r for r in aggregate(runs, (metric, "val/mIoU_best"))}
missing = [e for e in rows if metric not in agg.get(e, {})]
if missing:
    sys.exit(f"threeways_results: no {metric} for {missing} under {out / 'seg'}")
seeds = sorted({r["seed"] for r in runs})
by_seed = per_seed(runs, metric)
commit = source_commit()
labels = {"supervised": "random init", "transfer": "depth transfer",
          "depthmix": "transfer + DepthMix", "classmix": "ClassMix (random init)"}


def fmt(x):
    return "—" if x is None else f"{100 * x:.2f}"


def depth_value(key):
    v = depth.get(key)
    return "—" if v is None else f"{v:.4f}"


abs_rel, constant = depth.get("test/depth/abs_rel"), depth.get("test/depth/abs_rel_constant")
if abs_rel is None or constant is None:
    verdict = "not measured (no test/depth metrics in the depth run)"
else:
    verdict = ("self-supervised depth is better than a constant depth" if abs_rel < constant else
               "self-supervised depth is NOT better than a constant depth")
lines = [
    "# Three Ways on synthetic_city: depth, transfer, DepthMix (generated page)",
    "",
    f"Written by `{command}` on {datetime.date.today().isoformat()}, commit {commit}, "
    f"{platform.machine()}, extra overrides: `{extra}`. Output directory: `{out}`.",
    "Do not edit by hand: rerun the script. Numbers are what this run measured, nothing else.",
]
if smoke == "1":
    lines += ["", "**SMOKE setting** (8 tiny frames, two steps per run): checks the pipeline "
              "only; the numbers mean nothing."]
lines += [
    "",
    "## 1. Self-supervised depth (test = the synthetic val frames, median-scaled, cap 80 m)",
    "",
    "| prediction | abs rel | sq rel | RMSE | δ < 1.25 |",
    "|---|---:|---:|---:|---:|",
    f"| SDE (`{out}/depth`, last checkpoint) | {depth_value('test/depth/abs_rel')} | "
    f"{depth_value('test/depth/sq_rel')} | {depth_value('test/depth/rmse')} | "
    f"{depth_value('test/depth/a1')} |",
    f"| constant depth | {depth_value('test/depth/abs_rel_constant')} | | | |",
    "",
    f"**{verdict}**, as measured.",
    "",
    f"## 2. Segmentation with {split} labeled frames: {metric} (%, student, single scale)",
    "",
    "| row | experiment | mean ± std | n | " + " | ".join(f"seed {s}" for s in seeds) + " |",
    "|---|---|---:|---:|" + "---:|" * len(seeds),
]
for exp in rows:
    a = agg[exp][metric]
    row = labels.get(exp.split("_", 1)[0], exp)
    cells = [fmt(by_seed.get((exp, s))) for s in seeds]
    lines.append(f"| {row} | `{exp}` | {100 * a['mean']:.2f} ± {100 * a['std']:.2f} | {a['n']} | "
                 + " | ".join(cells) + " |")
lines += ["", "## Aggregate (`python -m leseg.aggregate`, mean ± sample std over seeds, %)", "",
          (out / "seg" / "aggregate.md").read_text().rstrip(), ""]
results = Path(results)
results.parent.mkdir(parents=True, exist_ok=True)
tmp = results.with_suffix(results.suffix + ".tmp")
tmp.write_text("\n".join(lines))
tmp.replace(results)
print(f"wrote {results}")
PY
