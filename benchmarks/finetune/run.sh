#!/usr/bin/env bash
# Adjoint Matching benchmarks (issue 14). Usage: bash benchmarks/finetune/run.sh toy | pointmaze-large | hopper
# Rows go to benchmarks/finetune/results.csv (diffplan evaluate --results); fine-tuning minutes are in each
# exported planner.json ("finetune_minutes").
set -euo pipefail
RESULTS=benchmarks/finetune/results.csv
EPISODES=${EPISODES:-100}

case "${1:-}" in
  toy)
    OMP_NUM_THREADS=1 python benchmarks/finetune/toy_tilt.py
    ;;
  pointmaze-large)
    # The forbidden region: set BOX to the TFG benchmark's box so base, TFG and fine-tune see the same one.
    BOX=${BOX:?set BOX to an avoid_box spec, e.g. '{"type": "avoid_box", "lo": [x0, y0], "hi": [x1, y1]}'}
    LAM=${LAM:-20}
    out=runs/finetune/hd-pointmaze-large-avoid-lam$LAM
    mkdir -p runs/finetune && rm -rf "$out" && cp -r pretrained/hd-pointmaze-large "$out"
    # fine-tune the high level (subgoals) in place of the copy's high/; 5 steps keep the base's plan cost
    diffplan finetune --planner pretrained/hd-pointmaze-large/high --objective "$BOX" --lam "$LAM" \
      --steps "${STEPS:-1000}" --batch-size 32 --num-inference-steps 5 --export "$out/high"
    diffplan evaluate pretrained/hd-pointmaze-large --episodes "$EPISODES" --results $RESULTS --name hd-base
    diffplan evaluate pretrained/hd-pointmaze-large --episodes "$EPISODES" --results $RESULTS --name hd-tfg \
      --guidance "{\"method\": \"tfg\", \"objective\": $BOX}"
    diffplan evaluate "$out" --episodes "$EPISODES" --results $RESULTS --name "hd-am-lam$LAM" --notes "objective=$BOX"
    ;;
  hopper)
    # The reward is a learned critic of planned states (diffplan.nn.critic.StateCritic saved with save_module).
    CRITIC=${CRITIC:?set CRITIC to a critic folder (config.json + weights.safetensors)}
    LAM=${LAM:-1}
    out=runs/finetune/dd-hopper-medium-critic-lam$LAM
    diffplan finetune --planner pretrained/dd-hopper-medium --objective "{\"type\": \"critic\", \"path\": \"$CRITIC\"}" \
      --lam "$LAM" --steps "${STEPS:-2000}" --batch-size 32 --num-inference-steps 10 --export "$out"
    diffplan evaluate pretrained/dd-hopper-medium --episodes "${EPISODES:-30}" --results $RESULTS --name dd-base
    diffplan evaluate "$out" --episodes "${EPISODES:-30}" --results $RESULTS --name "dd-am-lam$LAM"
    ;;
  *)
    echo "usage: bash benchmarks/finetune/run.sh toy | pointmaze-large | hopper" >&2
    exit 2
    ;;
esac
