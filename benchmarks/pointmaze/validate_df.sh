#!/usr/bin/env bash
# Choose Diffusion Forcing's planning settings on validation seeds 0-19 (rows in validation.csv), never on the test
# seeds (1000+). Diffused actions throughout. Each setting is either "scheduling:guidance_scale[:mctg_samples]" or a
# comma-separated list of planner overrides, e.g. "scheduling=full_sequence,guidance_scale=1,goal_inpainting=true";
# the scale moves x0 directly, so its size depends on the model and is searched here.
# Usage: bash benchmarks/pointmaze/validate_df.sh [planner folder] [task] [settings...]
set -euo pipefail
cd "$(dirname "$0")/../.."
planner=${1:-runs/df-umaze/planner}
task=${2:-pointmaze-umaze}
shift 2 2>/dev/null || shift $#
settings=${*:-pyramid:3 pyramid:10 pyramid:30 full_sequence:3 full_sequence:10 full_sequence:30}
for setting in $settings; do
    if [[ $setting == *=* ]]; then
        overrides=${setting//,/ }
    else
        IFS=: read -r scheduling scale mctg <<<"$setting"
        overrides="scheduling=$scheduling guidance_scale=$scale mctg_samples=${mctg:-1}"
    fi
    args=()
    for kv in $overrides; do args+=(--set "$kv"); done
    diffplan evaluate "$planner" --task "$task" --episodes 20 --seed 0 --quiet --name df-validation \
        --results benchmarks/pointmaze/validation.csv "${args[@]}" --notes "validation: $overrides"
done
