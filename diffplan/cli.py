"""The ``diffplan`` console script: ``data generate``, ``fit`` (LightningCLI), ``evaluate``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

RESULTS_DEFAULT = "benchmarks/{suite}/results.csv"


def _fit(argv: list[str], from_command_line: bool) -> None:
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from diffplan.data.datamodule import PlanningDataModule

    class DiffplanCLI(LightningCLI):
        """LightningCLI whose model is built with the datamodule's fitted normalizer, horizon and goal dims;
        ``--export DIR`` writes the planner folder after training (with the EMA weights)."""

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.link_arguments("data", "model.init_args.normalizer", apply_on="instantiate",
                                  compute_fn=lambda dm: dm.normalizer)
            parser.link_arguments("data", "model.init_args.horizon", apply_on="instantiate",
                                  compute_fn=lambda dm: dm.horizon)
            parser.link_arguments("data", "model.init_args.goal_dims", apply_on="instantiate",
                                  compute_fn=lambda dm: dm.task.goal_dims)
            parser.add_argument("--export", type=str | None, default=None,
                                help="Write the trained planner folder here after fit.")
            parser.add_argument("--planner", type=dict, default={},
                                help="Planner settings for the export (action_source, num_inference_steps, ...).")

        def before_fit(self) -> None:
            print(self.datamodule.describe())
            self._t0 = time.perf_counter()

        def after_fit(self) -> None:
            minutes = (time.perf_counter() - self._t0) / 60
            export = self.config[self.subcommand].get("export")
            if export and self.trainer.is_global_zero:
                kwargs = dict(self.config[self.subcommand].get("planner") or {})
                planner = self.model.cpu().to_planner(self.datamodule.task, self.datamodule.stride, **kwargs)
                planner.save_pretrained(export, train_minutes=round(minutes, 2),
                                        train_steps=int(self.trainer.global_step),
                                        dataset_id=self.datamodule.dataset_id, command=" ".join(["diffplan", *argv]))
                print(f"planner written to {export} ({self.trainer.global_step} steps, {minutes:.1f} min)")

    DiffplanCLI(L.LightningModule, PlanningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                args=None if from_command_line else argv,
                save_config_kwargs={"overwrite": True})


def _data(args: argparse.Namespace) -> None:
    from diffplan.data.recipes import generate_dataset
    from diffplan.tasks import load_task

    task = load_task(args.task)
    t0 = time.perf_counter()
    ds = generate_dataset(task, steps=args.steps, seed=args.seed, dataset_id=args.dataset_id,
                          overwrite=args.overwrite, progress=not args.quiet)
    meta = ds.storage.metadata
    print(f"wrote {meta['dataset_id']}: {ds.total_episodes} episodes, {ds.total_steps} steps, ref scores "
          f"{meta.get('ref_min_score'):.2f} / {meta.get('ref_max_score'):.2f}, {time.perf_counter() - t0:.1f} s")


def _parse_value(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _evaluate(args: argparse.Namespace) -> None:
    from diffplan.evaluation.plots import plot_paths
    from diffplan.evaluation.results import append_row, result_row
    from diffplan.evaluation.rollout import evaluate
    from diffplan.planner import Planner
    from diffplan.tasks import load_task

    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: _parse_value(v) for k, v in overrides.items()}
    planner = Planner.from_pretrained(args.planner, task=args.task, **overrides)
    task = load_task(args.task) if args.task else planner.task
    meta = Planner.read_metadata(args.planner)
    result = evaluate(planner, task, episodes=args.episodes, seed=args.seed, num_envs=args.num_envs,
                      progress=not args.quiet)
    print(result)
    cfg = planner.config
    print(f"action source: {cfg['action_source']} (replan_every={cfg['replan_every']}, "
          f"tracker_lookahead={cfg.get('tracker_lookahead')}), {cfg.get('num_inference_steps')} denoising steps")
    name = args.name or Path(args.planner).name
    if not args.no_record:
        results = Path(args.results or RESULTS_DEFAULT.format(suite=task.suite))
        append_row(results, result_row(result, planner, name, args.planner, args.seed, meta, args.notes))
        print(f"row appended to {results}")
        plot = Path(args.plot or results.parent / "figures" / f"{name}-{task.name}.png")
    else:
        plot = Path(args.plot) if args.plot else None
    if plot is not None and task.maze_map is not None:
        title = f"{name} on {task.name}: score {result.summary()['score_mean']:.1f}"
        print(f"paths plotted to {plot_paths(result, plot, title=title)}")


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("fit", "validate"):
        _fit(argv, from_command_line)
        return
    parser = argparse.ArgumentParser(prog="diffplan", description="Diffusion planners on Minari datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fit", help="train a planner (LightningCLI; `diffplan fit --help`)")

    data = sub.add_parser("data", help="dataset commands").add_subparsers(dest="data_command", required=True)
    gen = data.add_parser("generate", help="regenerate a task's Minari dataset locally with its published recipe")
    gen.add_argument("task", help="task card name, e.g. pointmaze-umaze")
    gen.add_argument("--steps", type=int, default=None, help="environment steps (default: the recipe's, 1M)")
    gen.add_argument("--seed", type=int, default=None, help="recipe seed (default: the task card's)")
    gen.add_argument("--dataset-id", default=None, help="store under this Minari id (default: the task's local id)")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    gen.add_argument("--quiet", action="store_true")

    ev = sub.add_parser("evaluate", help="roll a planner folder out on the task's evaluation env")
    ev.add_argument("planner", help="planner folder")
    ev.add_argument("--task", default=None, help="task card (must match the planner's)")
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--seed", type=int, default=1000, help="reset seed of the first episode")
    ev.add_argument("--num-envs", type=int, default=10)
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a planner setting, e.g. --set num_inference_steps=5")
    ev.add_argument("--results", default=None, help=f"CSV to append to (default {RESULTS_DEFAULT})")
    ev.add_argument("--no-record", action="store_true", help="do not append a results row")
    ev.add_argument("--plot", default=None, help="PNG of planned and executed paths")
    ev.add_argument("--name", default=None, help="planner name in the results (default: folder name)")
    ev.add_argument("--notes", default="")
    ev.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "data":
            _data(args)
        elif args.command == "evaluate":
            _evaluate(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as err:
        print(f"diffplan: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
