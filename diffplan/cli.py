"""The ``diffplan`` console script: ``data generate``, ``fit`` (LightningCLI), ``evaluate``, ``finetune``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffplan.planner import Planner

# Outside the tracked benchmarks/ (runs/ is gitignored): published results are written only when asked for.
RESULTS_DEFAULT = "runs/eval/{suite}/results.csv"


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


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs; a value is JSON (``5``, ``true``, ``[1, 2]``) or else a plain string."""
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set num_inference_steps=5), got {item!r}.")
        try:
            overrides[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key.strip()] = text
    return overrides


def _check_override_types(overrides: dict[str, Any], config: dict[str, Any]) -> None:
    """A setting saved as a number (or string, or bool) must be overridden by one."""
    for key, value in overrides.items():
        saved = config.get(key)
        kinds = {bool: (bool,), int: (int, float), float: (int, float), str: (str,)}.get(type(saved))
        if kinds and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            raise ValueError(f"--set {key}={value!r}: expected type {type(saved).__name__} "
                             f"(the planner has {key}={saved!r}).")


def load_planner(path: str, settings: list[str], **load_kwargs: Any) -> tuple[Planner, dict[str, Any]]:
    """The planner folder at ``path`` loaded with ``--set KEY=VALUE`` ``settings`` (and ``from_pretrained``'s
    ``load_kwargs``), as ``diffplan evaluate`` loads it, and the parsed settings. A bad setting (malformed, of the
    wrong type, or refused by the planner) raises a one-line ValueError naming it; scripts turn it into a usage error.
    """
    from diffplan.io import PlannerFolderError
    from diffplan.planner import Planner

    overrides = parse_overrides(settings)
    meta = Planner.read_metadata(path) if Path(path).is_dir() else {}
    _check_override_types(overrides, meta.get("config", {}))
    try:
        return Planner.from_pretrained(path, **load_kwargs, **overrides), overrides
    except PlannerFolderError:
        raise
    except (TypeError, ValueError) as err:  # the planner's constructor rejected a value
        if not overrides:
            raise
        raise ValueError(f"--set {' '.join(settings)}: {err}") from err


def _default_name(planner_path: str) -> str:
    """The folder name, or its parent's for the ``runs/<run>/planner`` folders that ``fit --export`` writes."""
    path = Path(planner_path).resolve()
    return path.parent.name if path.name == "planner" and path.parent.name else path.name


NO_GUIDANCE = "none"


def _parse_guidance(text: str | None) -> dict | str | None:
    """``--guidance``: a guidance spec as JSON (``diffplan.guidance.spec``), or ``none`` to drop the folder's own."""
    if text is None:
        return None
    if text.strip().lower() == NO_GUIDANCE:
        return NO_GUIDANCE
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--guidance expects a JSON object with a \"method\" key, got {text!r} ({err.msg}).") from err
    if not isinstance(spec, dict):
        raise TypeError(f"--guidance expects a JSON object with a \"method\" key, got {text!r}.")
    return spec


def _violation_spec(text: str | None, guidance: dict | None) -> Any:
    """``--violation``: an objective spec as JSON; by default the avoid-region terms of the guidance in use (None
    when it has none)."""
    from diffplan.guidance.spec import objective_specs

    if text is not None:
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"--violation expects a JSON objective spec, e.g. '{{\"type\": \"avoid_box\", \"lo\": "
                             f"[1, 1], \"hi\": [2, 2]}}', got {text!r} ({err.msg}).") from err
    regions = [e for e in objective_specs(guidance) if e.get("type") in ("avoid_box", "avoid_disc")]
    return [{k: v for k, v in e.items() if k != "weight"} for e in regions] or None


def _evaluate(args: argparse.Namespace) -> None:
    from diffplan.evaluation.plots import plot_paths
    from diffplan.evaluation.results import append_row, result_row
    from diffplan.evaluation.rollout import evaluate
    from diffplan.planner import Planner
    from diffplan.tasks import load_task

    for flag, value in (("--episodes", args.episodes), ("--num-envs", args.num_envs)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}.")
    planner, overrides = load_planner(args.planner, args.set, task=args.task, guidance=_parse_guidance(args.guidance))
    meta = Planner.read_metadata(args.planner) if Path(args.planner).is_dir() else {}
    task = load_task(args.task) if args.task else planner.task
    in_use = planner.guidance if isinstance(planner.guidance, dict) else getattr(planner.guidance, "spec", None)
    violation = _violation_spec(args.violation, in_use)
    result = evaluate(planner, task, episodes=args.episodes, seed=args.seed, num_envs=args.num_envs,
                      progress=not args.quiet, protocol=args.protocol, violation=violation)
    print(result)
    cfg = planner.config
    print(f"action source: {cfg['action_source']} (replan_every={cfg['replan_every']}, "
          f"tracker_lookahead={cfg.get('tracker_lookahead')}), {cfg.get('num_inference_steps')} denoising steps")
    name = args.name or _default_name(args.planner)
    if not args.no_record:
        results = Path(args.results or RESULTS_DEFAULT.format(suite=task.suite))
        used = args.guidance if args.guidance else (json.dumps(in_use) if in_use is not None else "")
        settings = f"set={json.dumps(overrides)}" if overrides else ""  # what differs from the folder's config
        notes = " ".join(filter(None, [args.notes, settings, f"guidance={used}" if used else "",
                                       f"violation={json.dumps(violation)}" if violation is not None else ""]))
        append_row(results, result_row(result, planner, name, args.planner, args.seed, meta, notes))
        print(f"row appended to {results}")
        protocol = "" if args.protocol == "task" else f"-{args.protocol}"  # a random-pairs run keeps the task's figure
        plot = Path(args.plot or results.parent / "figures" / f"{name}-{task.name}{protocol}.png")
    else:
        plot = Path(args.plot) if args.plot else None
    if plot is not None and task.maze_map is not None:
        title = f"{name} ({type(planner).__name__}) on {task.name}: score {result.summary()['score_mean']:.1f}"
        print(f"paths plotted to {plot_paths(result, plot, title=title)}")


def _finetune(args: argparse.Namespace) -> None:
    """Adjoint Matching on a planner folder, contexts (start states, goals) drawn from its task's dataset or from
    resets of its evaluation env (``--contexts env``)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from diffplan.callbacks import RandomState, TrainClock
    from diffplan.data.datamodule import PlanningDataModule
    from diffplan.finetune.adjoint_matching import AdjointMatching
    from diffplan.io import check_replaceable
    from diffplan.training import quiet_lightning

    try:
        objective = json.loads(args.objective)
    except json.JSONDecodeError as err:
        raise ValueError(f"--objective expects a JSON objective spec, e.g. '{{\"type\": \"avoid_box\", \"lo\": "
                         f"[1, 1], \"hi\": [2, 2]}}', got {args.objective!r} ({err.msg}).") from err
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}.")
    check_replaceable(args.export)
    if args.ckpt_path is not None and not Path(args.ckpt_path).is_file():
        raise FileNotFoundError(f"--ckpt-path {args.ckpt_path}: no such checkpoint; pass a .ckpt file that an "
                                f"earlier `diffplan finetune` wrote in its --checkpoint-dir.")
    quiet_lightning()
    L.seed_everything(args.seed, verbose=False)
    module = AdjointMatching(args.planner, objective, lam=args.lam, num_inference_steps=args.num_inference_steps,
                             last_k=args.last_k, random_k=args.random_k, loss_clip=args.loss_clip,
                             learning_rate=args.lr, weight_decay=args.weight_decay,
                             samples_per_context=args.samples_per_context)
    if args.contexts == "env":
        from diffplan.finetune.contexts import env_context_loader

        data = {"train_dataloaders": env_context_loader(module.base.task, args.env_contexts, args.batch_size)}
    else:
        data = {"datamodule": PlanningDataModule(module.base.task.name, args.dataset_id, horizon=2, stride=1,
                                                 batch_size=args.batch_size, seed=args.seed,
                                                 progress=not args.quiet)}
    clock = TrainClock()
    callbacks: list[L.Callback] = [clock, RandomState()]
    run_dir = Path(args.checkpoint_dir or f"{args.export}.checkpoints")
    if args.checkpoint_every:
        # same arguments on resume: the checkpoint restores the fine-tuned copy, optimizer, clock and RNG
        callbacks.append(ModelCheckpoint(dirpath=run_dir, save_last=True, every_n_train_steps=args.checkpoint_every,
                                         save_top_k=-1))
    # train/reward and train/loss per step, readable while a long run goes on
    logger = CSVLogger(run_dir, name="", version="logs")
    trainer = L.Trainer(max_steps=args.steps, accelerator=args.accelerator, devices=1, log_every_n_steps=1,
                        gradient_clip_val=args.grad_clip, logger=logger, enable_checkpointing=bool(args.checkpoint_every),
                        enable_progress_bar=not args.quiet, enable_model_summary=False, callbacks=callbacks)
    trainer.fit(module, **data, ckpt_path=args.ckpt_path)
    module.cpu().save_pretrained(args.export, finetune_minutes=round(clock.minutes, 2), finetune_contexts=args.contexts,
                                 command=" ".join(["diffplan", *args.argv]))
    print(f"fine-tuned planner written to {args.export} ({trainer.global_step} steps, {clock.minutes:.1f} min)")


def _task_list() -> str:
    from diffplan.tasks import available_tasks

    return "tasks: " + ", ".join(available_tasks())


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("fit", "validate"):
        from diffplan.training import FitError, fit

        try:
            fit(argv, from_command_line)
        except FitError as err:
            print(f"usage: diffplan {argv[0]} [--config CONFIG] [--model ...] [--data ...] [--trainer.* ...] "
                  f"[--export DIR] [--planner JSON] [--ckpt_path PATH]  (`diffplan {argv[0]} --help` lists all)",
                  file=sys.stderr)
            print(f"diffplan: error: {err}", file=sys.stderr)
            sys.exit(2)
        return
    parser = argparse.ArgumentParser(prog="diffplan", description="Diffusion planners on Minari datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fit", help="train a planner (LightningCLI; `diffplan fit --help`)")

    data = sub.add_parser("data", help="dataset commands").add_subparsers(dest="data_command", required=True)
    gen = data.add_parser("generate", help="regenerate a task's Minari dataset locally with its published recipe",
                          epilog=_task_list())
    gen.add_argument("task", help="task card name (listed below), or a path to a task card YAML")
    gen.add_argument("--steps", type=int, default=None, help="environment steps (default: the task card's)")
    gen.add_argument("--seed", type=int, default=None, help="recipe seed (default: the task card's)")
    gen.add_argument("--dataset-id", default=None, help="store under this Minari id (default: the task's local id)")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")

    ev = sub.add_parser("evaluate", help="roll a planner folder out on the task's evaluation env",
                        epilog=_task_list())
    ev.add_argument("planner", help="planner folder (written by `diffplan fit ... --export DIR`)")
    ev.add_argument("--task", default=None, help="task card (listed below); must match the planner's")
    ev.add_argument("--episodes", type=int, default=20, help="episodes to run, reset seeds --seed, --seed + 1, ... (default: %(default)s)")
    ev.add_argument("--seed", type=int, default=1000, help="reset seed of the first episode (default: %(default)s)")
    ev.add_argument("--num-envs", type=int, default=10, help="episodes run side by side in a vector env (default: %(default)s)")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a planner setting, e.g. --set num_inference_steps=5 (value: JSON, else a string)")
    ev.add_argument("--guidance", default=None, metavar="JSON",
                    help='steer the planner: a guidance spec, e.g. \'{"method": "tfg", "objective": {"type": "reach", '
                         '"target": [1, 2]}}\' (default: the folder\'s own, if any; "none": without it)')
    ev.add_argument("--protocol", default="task", choices=("task", "random_pairs"),
                    help="episodes of the task card's evaluation env, or start and goal cells drawn at random per "
                         "reset seed and scored as a share of the noise-free controller's return on the same pairs "
                         "(maze tasks) (default: %(default)s)")
    ev.add_argument("--violation", default=None, metavar="JSON",
                    help="report the share of episodes whose executed path enters a region: an objective spec with "
                         "avoid_box / avoid_disc terms (default: those inside the guidance, if any)")
    ev.add_argument("--results", default=None,
                    help=f"CSV to append the row to (default: {RESULTS_DEFAULT} in the current directory)")
    ev.add_argument("--no-record", action="store_true", help="do not append a results row")
    ev.add_argument("--plot", default=None, help="PNG of planned and executed paths (default: figures/ beside "
                                                 "the results CSV, <name>-<task>[-<protocol>].png; maze tasks only)")
    ev.add_argument("--name", default=None, help="planner name in the results and figure (default: the folder "
                                                 "name, or the run folder's for .../<run>/planner)")
    ev.add_argument("--notes", default="", help="free text for the row's notes column (default: empty)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ft = sub.add_parser("finetune", help="fine-tune a planner folder toward a reward (Adjoint Matching)")
    ft.add_argument("--planner", required=True, help="base planner folder (one denoising chain: Diffuser, Decision "
                                                     "Diffuser, or a Hierarchical Diffuser's high/ level)")
    ft.add_argument("--objective", required=True, metavar="JSON",
                    help="the reward, an objective spec in env units (diffplan.objectives), e.g. "
                         "'{\"type\": \"avoid_box\", \"lo\": [1, 1], \"hi\": [2, 2]}'")
    ft.add_argument("--export", required=True, help="write the fine-tuned planner folder here")
    ft.add_argument("--lam", type=float, default=1.0, help="reward multiplier lambda (default: %(default)s)")
    ft.add_argument("--steps", type=int, default=500, help="optimizer steps (default: %(default)s)")
    ft.add_argument("--batch-size", type=int, default=32, help="contexts per step (default: %(default)s)")
    ft.add_argument("--samples-per-context", type=int, default=1, help="plans per context (default: %(default)s)")
    ft.add_argument("--num-inference-steps", type=int, default=None,
                    help="DDPM (eta = 1) steps, used by the export too (default: the planner's)")
    ft.add_argument("--last-k", type=int, default=5, help="loss on the last K steps (default: %(default)s)")
    ft.add_argument("--random-k", type=int, default=5, help="plus this many of the others (default: %(default)s)")
    ft.add_argument("--loss-clip", type=float, default=None, help="cap per (plan, step) loss term (default: none)")
    ft.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (default: %(default)s)")
    ft.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default: %(default)s)")
    ft.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip (default: %(default)s)")
    ft.add_argument("--contexts", default="dataset", choices=("dataset", "env"),
                    help="plan contexts: states (and goals) of the task's dataset, or the first observations of "
                         "evaluation episodes with reset seeds 10000000, 10000001, ... (the deployment distribution; "
                         "never the benchmarks' validation or test seeds) (default: %(default)s)")
    ft.add_argument("--env-contexts", type=int, default=2048, help="how many env contexts (default: %(default)s)")
    ft.add_argument("--dataset-id", default=None, help="contexts from this Minari id (default: the task's local id)")
    ft.add_argument("--accelerator", default="auto", help="Lightning accelerator (default: %(default)s)")
    ft.add_argument("--seed", type=int, default=0, help="seed of contexts and chains (default: %(default)s)")
    ft.add_argument("--checkpoint-every", type=int, default=100,
                    help="write a Lightning checkpoint every N steps, 0 for none (default: %(default)s)")
    ft.add_argument("--checkpoint-dir", default=None,
                    help="checkpoints and logs/metrics.csv (per-step reward and loss) go here "
                         "(default: <export>.checkpoints)")
    ft.add_argument("--ckpt-path", default=None,
                    help="resume from this checkpoint (same arguments, a larger --steps to train on)")
    ft.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        if args.command == "data":
            _data(args)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "finetune":
            _finetune(args)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as err:
        print(f"diffplan: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
