#!/usr/bin/env bash
# Test rows of Diffusion Forcing on one maze (seeds 1000-1099, diffused actions unless named), after its settings
# were chosen with validate_df.sh. Every row goes to results.csv; the settings chosen on validation are passed in.
# Usage: bash benchmarks/pointmaze/run_df.sh <maze> <scheduling> <guidance_scale> [mctg_samples]
# Environment (optional):
#   PLANNER  planner folder (default runs/df-<maze>/planner)
#   TASK     task card (default pointmaze-<maze>; e.g. pointmaze-umaze-hold, same test seeds and reference scores)
#   NAME     row name prefix (default df-<maze>)
#   EXTRA    further overrides chosen on validation, "key=value ..." (e.g. "goal_inpainting=true")
#   ROWS     which rows (default "main random other mctg noctx invdyn")
set -euo pipefail
cd "$(dirname "$0")/../.."
maze=$1; scheduling=$2; scale=$3; mctg=${4:-1}
planner=${PLANNER:-runs/df-$maze/planner}
task=${TASK:-pointmaze-$maze}
name=${NAME:-df-$maze}
rows=${ROWS:-main random other mctg noctx invdyn}
R=benchmarks/pointmaze/results.csv
other=$([ "$scheduling" = pyramid ] && echo full_sequence || echo pyramid)
chosen="scheduling=$scheduling guidance_scale=$scale mctg_samples=$mctg ${EXTRA:-}"
chosen="${chosen% }, chosen on validation seeds 0-19"
extra=()
for kv in ${EXTRA:-}; do extra+=(--set "$kv"); done
run() {  # row, name, notes, extra diffplan evaluate arguments...
    local row=$1 row_name=$2 notes=$3; shift 3
    [[ " $rows " == *" $row "* ]] || return 0
    diffplan evaluate "$planner" --task "$task" --episodes 100 --seed 1000 --quiet --results $R \
        --name "$row_name" --notes "$notes" --set scheduling="$scheduling" --set guidance_scale="$scale" \
        --set mctg_samples="$mctg" "${extra[@]}" "$@"
}
run main "$name" "$chosen"
run random "$name" "$chosen; random start/goal pairs" --protocol random_pairs
run other "$name-$other" "as $name with scheduling=$other" --set scheduling="$other"
if [ "$mctg" != 1 ]; then
    run mctg "$name-nomctg" "as $name without MCTG (mctg_samples=1)" --set mctg_samples=1
else
    run mctg "$name-pyramid-mctg4" "as $name with pyramid scheduling and MCTG (mctg_samples=4; MCTG needs tokens \
at different levels)" --set scheduling=pyramid --set mctg_samples=4
fi
run noctx "$name-noctx" "as $name, planning from the current observation alone (act_context=false)" \
    --set act_context=false
run invdyn "$name-invdyn" "as $name, acting by inverse dynamics on the planned next state" \
    --set action_source=inverse_dynamics
