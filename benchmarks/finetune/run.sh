#!/usr/bin/env bash
# Adjoint Matching benchmarks (issue 14). Usage: bash benchmarks/finetune/run.sh toy | pointmaze-large | hopper
# Rows go to benchmarks/finetune/results.csv (test seeds); ROWS=benchmarks/finetune/validation.csv SEED=0 for the
# validation rows settings were chosen on. Fine-tuning minutes are in each exported planner.json ("finetune_minutes").
set -euo pipefail
RESULTS=benchmarks/finetune/results.csv
EPISODES=${EPISODES:-100}

case "${1:-}" in
  toy)
    OMP_NUM_THREADS=1 python benchmarks/finetune/toy_tilt.py
    ;;
  pointmaze-large)
    # A box of issue 13's table 2 (benchmarks/guidance/region.py) plus the walls term: the objective TFG was searched on
    BOX=${BOX:-box1}
    case $BOX in
      box1) REGION='{"type": "avoid_box", "lo": [0.0, -0.5], "hi": [1.0, 0.5]}' ;;
      box2) REGION='{"type": "avoid_box", "lo": [4.0, -0.5], "hi": [5.0, 0.5]}' ;;
      box3) REGION='{"type": "avoid_box", "lo": [0.0, -0.5], "hi": [0.5, 0.5]}' ;;
      *) echo "BOX must be box1, box2 or box3" >&2; exit 2 ;;
    esac
    BETWEEN=${BETWEEN:-0}  # points scored on each segment between subgoals (4: subgoals cannot step over the box)
    TERM=$(python -c "import json, sys; print(json.dumps({**json.loads(sys.argv[1]), 'between': int(sys.argv[2])} if int(sys.argv[2]) else json.loads(sys.argv[1])))" "$REGION" "$BETWEEN")
    OBJECTIVE="[$TERM, {\"type\": \"maze_walls\", \"weight\": 0.3}]"
    TFG='{"recur_steps": 1, "iter_steps": 4, "rho": 0.01, "mu": 0.03, "gamma": 0.001}'  # searched on validation
    SEED=${SEED:-1000}  # validation: SEED=0 EPISODES=20
    out=runs/finetune/hd-large-$BOX$([ "$BETWEEN" = 0 ] || echo "-between$BETWEEN")
    mkdir -p $out
    # the base on the chain the fine-tunes sample (DDPM, eta = 1): lambda = 0 keeps the model at the base
    [ -d $out/lam0-high ] || diffplan finetune --planner pretrained/hd-pointmaze-large/high --objective "$OBJECTIVE" \
      --lam 0 --steps 1 --num-inference-steps 5 --checkpoint-every 0 --export $out/lam0-high --quiet
    rows=(--row $BOX-base=pretrained/hd-pointmaze-large --row $BOX-tfg=pretrained/hd-pointmaze-large:tfg)
    rows+=(--row $BOX-base-ddpm=pretrained/hd-pointmaze-large+$out/lam0-high)
    for lam in ${LAMS:-5 20 80}; do
      # the high level (subgoals) only, on start/goal contexts of the evaluation env (reset seeds 10000000+); its
      # 5 steps keep the base's plan cost. ~8 CPU-minutes per 1000 steps; resumable with --ckpt-path
      [ -d $out/lam$lam-high ] || diffplan finetune --planner pretrained/hd-pointmaze-large/high \
        --objective "$OBJECTIVE" --lam $lam --lr 1e-4 --steps ${STEPS:-1000} --batch-size 32 --num-inference-steps 5 \
        --contexts env --export $out/lam$lam-high
      rows+=(--row $BOX-am-lam$lam=pretrained/hd-pointmaze-large+$out/lam$lam-high)
    done
    python benchmarks/finetune/maze_region.py "${rows[@]}" --box $BOX --walls 0.3 --between $BETWEEN --tfg "$TFG" --episodes "$EPISODES" \
      --seed "$SEED" --results ${ROWS:-$RESULTS}
    ;;
  hopper)
    # The reward is a learned critic of planned states (diffplan.nn.critic.StateCritic): the sum of V(s) over the
    # plan, in return units (plans differ by ~3000 within one context, hence lambda ~ 1e-3).
    #   diffplan fit --config benchmarks/locomotion/configs/critic-hopper-medium.yaml   (2 CPU-minutes)
    CRITIC=${CRITIC:-runs/critic-hopper-medium/critic}
    SEED=${SEED:-1000}  # validation: SEED=0 EPISODES=10
    out=runs/finetune/dd-hopper
    diffplan evaluate pretrained/dd-hopper-medium --set eta=1.0 --episodes "${EPISODES:-30}" --seed "$SEED" --quiet \
      --results ${ROWS:-$RESULTS} --name dd-base-ddpm
    for lam in ${LAMS:-0.001 0.003}; do
      [ -d $out/lam$lam ] || diffplan finetune --planner pretrained/dd-hopper-medium \
        --objective "{\"type\": \"critic\", \"path\": \"$CRITIC\"}" --lam $lam --lr 1e-4 --steps 400 --batch-size 32 \
        --export $out/lam$lam
      diffplan evaluate $out/lam$lam --episodes "${EPISODES:-30}" --seed "$SEED" --quiet --results ${ROWS:-$RESULTS} \
        --name dd-am-critic-lam$lam
    done
    ;;
  *)
    echo "usage: bash benchmarks/finetune/run.sh toy | pointmaze-large | hopper" >&2
    exit 2
    ;;
esac
