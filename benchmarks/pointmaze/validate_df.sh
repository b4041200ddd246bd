#!/usr/bin/env bash
# Choose Diffusion Forcing's planning settings on validation seeds 0-19 (rows in validation.csv), never on the test
# seeds (1000+). Diffused actions throughout. Each setting is "scheduling:guidance_scale[:mctg_samples]"; the scale
# moves x0 directly, so its size depends on the model and is searched here.
# Usage: bash benchmarks/pointmaze/validate_df.sh [planner folder] [task] [settings...]
set -euo pipefail
cd "$(dirname "$0")/../.."
planner=${1:-runs/df-umaze/planner}
task=${2:-pointmaze-umaze}
shift 2 2>/dev/null || shift $#
settings=${*:-pyramid:3 pyramid:10 pyramid:30 full_sequence:3 full_sequence:10 full_sequence:30}
for setting in $settings; do
    IFS=: read -r scheduling scale mctg <<<"$setting"
    mctg=${mctg:-1}
    diffplan evaluate "$planner" --task "$task" --episodes 20 --seed 0 --quiet --name df-validation \
        --results benchmarks/pointmaze/validation.csv --set scheduling="$scheduling" \
        --set guidance_scale="$scale" --set mctg_samples="$mctg" \
        --notes "validation: scheduling=$scheduling guidance_scale=$scale mctg_samples=$mctg"
done
