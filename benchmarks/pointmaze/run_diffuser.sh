#!/usr/bin/env bash
# The Diffuser rows of benchmarks/pointmaze/results.csv: for each maze, regenerate the 1M-step dataset, train,
# choose the tracker look-ahead on validation seeds 0-19, then evaluate 100 episodes on seeds 1000-1099.
# Usage: bash benchmarks/pointmaze/run_diffuser.sh [umaze medium large]
set -euo pipefail
cd "$(dirname "$0")/../.."
for maze in "${@:-umaze medium large}"; do
    [ -d "$HOME/.minari/datasets/diffplan/pointmaze/$maze-v0" ] || diffplan data generate "pointmaze-$maze"
    diffplan fit --config "benchmarks/pointmaze/configs/diffuser-$maze.yaml"
    python benchmarks/pointmaze/select_tracker.py "runs/diffuser-$maze/planner"
    diffplan evaluate "runs/diffuser-$maze/planner" --task "pointmaze-$maze" --episodes 100 --seed 1000 \
        --name "diffuser-$maze"
    python benchmarks/pointmaze/speed.py "runs/diffuser-$maze/planner"
done
