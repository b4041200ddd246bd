#!/usr/bin/env bash
# Locomotion rows of benchmarks/locomotion/results.csv: behaviour policy (only if not shipped), dataset, training,
# evaluation on seeds 1000+ (never used for choices; validation uses seeds 0-9).
# Usage: bash benchmarks/locomotion/run.sh [hopper]
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A ENV_ID=([hopper]=Hopper-v5 [walker2d]=Walker2d-v5 [halfcheetah]=HalfCheetah-v5)
declare -A TARGET=([hopper]=1400 [walker2d]=1500 [halfcheetah]=4000)
for env in ${@:-hopper}; do
    [ -f "pretrained/behavior/$env-medium/config.json" ] || python benchmarks/locomotion/train_behavior.py \
        "${ENV_ID[$env]}" --target-return "${TARGET[$env]}" --out "pretrained/behavior/$env-medium"
    [ -d "$HOME/.minari/datasets/diffplan/mujoco/$env/medium-v0" ] || diffplan data generate "$env-medium"
    diffplan fit --config "benchmarks/locomotion/configs/dd-$env-medium.yaml"
    diffplan evaluate "runs/dd-$env-medium/planner" --task "$env-medium" --episodes 10 --seed 1000 \
        --num-envs 5 --name "dd-$env-medium"
done
