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
    # box1 of issue 13's table 2 (benchmarks/guidance/region.py) plus the walls term, the objective TFG was searched on
    OBJECTIVE='[{"type": "avoid_box", "lo": [0.0, -0.5], "hi": [1.0, 0.5]}, {"type": "maze_walls", "weight": 0.3}]'
    TFG='{"recur_steps": 1, "iter_steps": 4, "rho": 0.01, "mu": 0.03, "gamma": 0.001}'  # searched on validation
    SEED=${SEED:-1000}  # validation: SEED=0 EPISODES=20
    out=runs/finetune/hd-large-box1
    mkdir -p $out
    # the base on the chain the fine-tunes sample (DDPM, eta = 1): lambda = 0 keeps the model at the base
    diffplan finetune --planner pretrained/hd-pointmaze-large/high --objective "$OBJECTIVE" --lam 0 --steps 1 \
      --num-inference-steps 5 --checkpoint-every 0 --export $out/lam0-high --quiet
    rows=(--row base=pretrained/hd-pointmaze-large --row tfg=pretrained/hd-pointmaze-large:tfg)
    rows+=(--row base-ddpm=pretrained/hd-pointmaze-large+$out/lam0-high)
    for lam in ${LAMS:-5 20 80}; do
      # the high level (subgoals) only; its 5 steps keep the base's plan cost. Resumable: add --ckpt-path
      [ -d $out/lam$lam-high ] || diffplan finetune --planner pretrained/hd-pointmaze-large/high --objective "$OBJECTIVE" \
        --lam $lam --lr 1e-4 --steps ${STEPS:-1000} --batch-size 32 --num-inference-steps 5 --export $out/lam$lam-high
      rows+=(--row am-lam$lam=pretrained/hd-pointmaze-large+$out/lam$lam-high)
    done
    python benchmarks/finetune/region.py "${rows[@]}" --box box1 --walls 0.3 --tfg "$TFG" --episodes "$EPISODES" \
      --seed "$SEED" --results ${ROWS:-$RESULTS}
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
