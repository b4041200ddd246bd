#!/usr/bin/env bash
# Locomotion rows of benchmarks/locomotion/results.csv: behaviour policy (only if not shipped), datasets, Decision
# Diffuser training and evaluation on seeds 1000+ (settings are chosen on seeds 0-9 only), and the d3rlpy BC row.
# Usage: bash benchmarks/locomotion/run.sh [hopper walker2d halfcheetah]
# Each step is skipped when its output exists, so an interrupted run resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A ENV_ID=([hopper]=Hopper-v5 [walker2d]=Walker2d-v5 [halfcheetah]=HalfCheetah-v5)
declare -A TARGET=([hopper]=1400 [walker2d]=1500 [halfcheetah]=4000)   # about 1/3 of D4RL's expert return
datasets="$HOME/.minari/datasets/diffplan/mujoco"
for env in ${@:-hopper walker2d halfcheetah}; do
    [ -f "pretrained/behavior/$env-medium/config.json" ] || python benchmarks/locomotion/train_behavior.py \
        "${ENV_ID[$env]}" --target-return "${TARGET[$env]}" --out "pretrained/behavior/$env-medium" \
        --replay-out "pretrained/behavior/$env-medium-replay"
    for kind in random medium medium-replay; do
        if [ "$kind" = medium-replay ] && [ ! -f "pretrained/behavior/$env-medium-replay/schedule.json" ]; then
            continue
        fi
        [ -d "$datasets/$env/$kind-v0" ] || diffplan data generate "$env-$kind"
    done
    [ -f "runs/dd-$env-medium/planner/planner.json" ] || diffplan fit --config "benchmarks/locomotion/configs/dd-$env-medium.yaml"
    diffplan evaluate "runs/dd-$env-medium/planner" --task "$env-medium" --episodes 10 --seed 1000 \
        --num-envs 5 --name "dd-$env-medium" \
        --results benchmarks/locomotion/results.csv
    if python -c "import d3rlpy" 2>/dev/null; then
        python benchmarks/locomotion/baselines.py "$env-medium" --algo bc --steps 20000
    fi
done
