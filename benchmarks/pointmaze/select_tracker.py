"""Choose the tracker's look-ahead on validation seeds (never the evaluation seeds) and store it in the folder.

    python benchmarks/pointmaze/select_tracker.py runs/diffuser-umaze/planner --seed 0 --episodes 20

Validation episodes use reset seeds ``seed .. seed + episodes - 1`` (default 0..19); the benchmark rows use
seeds from 1000 on. Every candidate's score goes to ``benchmarks/pointmaze/validation.csv``.
"""

from __future__ import annotations

import argparse

from diffplan import Planner
from diffplan.evaluation.results import append_row, result_row
from diffplan.evaluation.rollout import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--lookaheads", type=float, nargs="+", default=[0, 10, 20, 30, 40, 50, 60])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--log", default="benchmarks/pointmaze/validation.csv")
    args = parser.parse_args()
    if args.seed + args.episodes > 1000:
        parser.error("validation seeds must stay below 1000, where the evaluation seeds start")
    scores = {}
    for lookahead in args.lookaheads:
        planner = Planner.from_pretrained(args.planner, action_source="tracker", tracker_lookahead=lookahead)
        result = evaluate(planner, planner.task, episodes=args.episodes, seed=args.seed, progress=False)
        s = result.summary()
        scores[lookahead] = s["score_mean"]
        print(f"tracker_lookahead={lookahead:g}: {result}")
        name = args.planner.rstrip("/").split("/")[-1]
        append_row(args.log, result_row(result, planner, name, args.planner, args.seed,
                                        notes=f"validation: tracker_lookahead={lookahead:g}"))
    best = max(scores, key=scores.get)
    Planner.from_pretrained(args.planner, action_source="tracker", tracker_lookahead=best).save_pretrained(
        args.planner, readme=_readme(args.planner), **Planner.training_metadata(args.planner))
    print(f"chose tracker_lookahead={best:g} (validation score {scores[best]:.1f}); saved into {args.planner}")


def _readme(path: str) -> str | None:
    from pathlib import Path

    readme = Path(path) / "README.md"
    return readme.read_text() if readme.exists() else None


if __name__ == "__main__":
    main()
