#!/usr/bin/env bash
# README's main job: generate a small PointMaze dataset, train a small Diffuser, plan, evaluate, print the score.
set -euo pipefail
cd "$(dirname "$0")/../.."
diffplan data generate pointmaze-umaze --steps 200000 --dataset-id diffplan/pointmaze/umaze-quickstart-v0 --overwrite
diffplan fit --config benchmarks/pointmaze/configs/quickstart.yaml
diffplan evaluate runs/quickstart/planner --task pointmaze-umaze --episodes 20 --seed 1000 \
    --results runs/quickstart/results.csv --plot runs/quickstart/paths.png
