#!/usr/bin/env bash
# Test rows of Diffusion Forcing on one maze (seeds 1000-1099, diffused actions unless named), after its settings
# were chosen with validate_df.sh. Every row goes to results.csv; the settings chosen on validation are passed in.
# Usage: bash benchmarks/pointmaze/run_df.sh <maze> <scheduling> <guidance_scale> [mctg_samples]
set -euo pipefail
cd "$(dirname "$0")/../.."
maze=$1; scheduling=$2; scale=$3; mctg=${4:-1}
planner=runs/df-$maze/planner
R=benchmarks/pointmaze/results.csv
other=$([ "$scheduling" = pyramid ] && echo full_sequence || echo pyramid)
chosen="scheduling=$scheduling guidance_scale=$scale mctg_samples=$mctg, chosen on validation seeds 0-19"
run() {  # name, notes, extra diffplan evaluate arguments...
    local name=$1 notes=$2; shift 2
    diffplan evaluate "$planner" --task "pointmaze-$maze" --episodes 100 --seed 1000 --quiet --results $R \
        --name "$name" --notes "$notes" --set scheduling="$scheduling" --set guidance_scale="$scale" \
        --set mctg_samples="$mctg" "$@"
}
run "df-$maze" "$chosen"
run "df-$maze" "$chosen; random start/goal pairs" --protocol random_pairs
run "df-$maze-$other" "as df-$maze with scheduling=$other" --set scheduling="$other"
[ "$mctg" != 1 ] && run "df-$maze-nomctg" "as df-$maze without MCTG (mctg_samples=1)" --set mctg_samples=1
[ "$mctg" = 1 ] && run "df-$maze-pyramid-mctg4" "as df-$maze with pyramid scheduling and MCTG (mctg_samples=4; \
MCTG needs tokens at different levels)" --set scheduling=pyramid --set mctg_samples=4
run "df-$maze-noctx" "as df-$maze, planning from the current observation alone (act_context=false)" \
    --set act_context=false
run "df-$maze-invdyn" "as df-$maze, acting by inverse dynamics on the planned next state" \
    --set action_source=inverse_dynamics
