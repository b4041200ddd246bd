#!/usr/bin/env bash
# Choose a locomotion Diffuser's planning settings on validation seeds 0-9 (rows in validation.csv), never on the
# test seeds. Every candidate stays cheap enough for the cost target (<= 1/20 of the paper configuration's plan).
# Usage: [TASK=walker2d-medium] bash benchmarks/locomotion/validate_diffuser.sh [planner folder] [setting names...]
# (default: hopper-medium, runs/diffuser-<task>/planner, every setting)
set -euo pipefail
cd "$(dirname "$0")/../.."
task=${TASK:-hopper-medium}
planner=${1:-runs/diffuser-$task/planner}
shift 1 2>/dev/null || true
only=" $* "
while read -r name settings; do
    [[ $# -gt 0 && "$only" != *" $name "* ]] && continue
    sets=()
    for kv in $settings; do sets+=(--set "$kv"); done
    diffplan evaluate "$planner" --task "$task" --episodes 10 --seed 0 --num-envs 10 --quiet \
        --name "diffuser-$task" --results benchmarks/locomotion/validation.csv \
        --notes "validation $name: $settings" "${sets[@]}"
done <<'SETTINGS'
guided-select8 n_samples=8 num_inference_steps=5 guidance_scale=0.1 n_guide_steps=2 t_stopgrad=2
select8 n_samples=8 num_inference_steps=5 guidance_scale=0.0
guided-1 n_samples=1 num_inference_steps=5 guidance_scale=0.1 n_guide_steps=2 t_stopgrad=2
plain-1 n_samples=1 num_inference_steps=5 guidance_scale=0.0
guided1-select8 n_samples=8 num_inference_steps=5 guidance_scale=0.1 n_guide_steps=1 t_stopgrad=2
guided1x2-select8 n_samples=8 num_inference_steps=5 guidance_scale=0.2 n_guide_steps=1 t_stopgrad=2
SETTINGS
