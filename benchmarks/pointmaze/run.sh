#!/usr/bin/env bash
# Rows of benchmarks/pointmaze/results.csv for one planner family (diffuser or hd): for each maze, regenerate
# the 1M-step dataset if missing, train, choose the tracker look-ahead on validation seeds 0-19, then evaluate
# 100 episodes on seeds 1000-1099. speed.py then times the planners of the maze against each other.
# Usage: bash benchmarks/pointmaze/run.sh diffuser|hd [umaze medium large]
set -euo pipefail
cd "$(dirname "$0")/../.."
family="$1"; shift
for maze in ${@:-umaze medium large}; do
    [ -d "$HOME/.minari/datasets/diffplan/pointmaze/$maze-v0" ] || diffplan data generate "pointmaze-$maze"
    diffplan fit --config "benchmarks/pointmaze/configs/$family-$maze.yaml"
    python benchmarks/pointmaze/select_tracker.py "runs/$family-$maze/planner"
    diffplan evaluate "runs/$family-$maze/planner" --task "pointmaze-$maze" --episodes 100 --seed 1000 \
        --name "$family-$maze" --results benchmarks/pointmaze/results.csv
    python benchmarks/pointmaze/speed.py runs/*-"$maze"/planner
done
