"""``diffplan fit``: LightningCLI with the datamodule linked into the model, checks before training, ``--export``."""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from diffplan.callbacks import RandomState, TrainClock
from diffplan.data.datamodule import PlanningDataModule
from diffplan.io import PlannerFolderError, check_replaceable


class FitError(Exception):
    """A ``fit`` command that cannot do what was asked; reported as one line, before any training."""


class DiffplanCLI(LightningCLI):
    """LightningCLI whose model is built with the datamodule's fitted normalizer, horizon and goal dims;
    ``--export DIR`` writes the planner folder after training (with the EMA weights), or the model's own folder
    for models that define ``export`` (e.g. ``diffplan.algorithms.critic.CriticTraining``).

    Args:
        command: the command line, recorded in the exported planner folder.
    """

    def __init__(self, *args: Any, command: list[str], **kwargs: Any):
        self.command = command
        super().__init__(*args, **kwargs)

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
        parser.add_argument("--init_weights", type=str | None, default=None,
                            help="Start from the weights of this planner folder (fine-tuning; the optimizer, step "
                                 "count and EMA start afresh). For a run's own checkpoint use --ckpt_path.")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, FileNotFoundError, MisconfigurationException) as err:
            raise FitError(_one_line(str(err))) from err  # a bad task, dataset id, argument value or combination

    def before_fit(self) -> None:
        config = self.config[self.subcommand]
        self._check_steps()
        planner_class = None
        if self._exports_itself():
            if config.get("planner"):
                raise FitError(f"--planner is for planner models; {type(self.model).__name__} exports its own "
                               f"folder, so drop --planner.")
        else:
            planner_class = self._check_planner_settings(config.get("planner") or {})
        if config.get("ckpt_path") == "last":
            self._check_last_checkpoint()
        if config.get("init_weights"):
            self._load_initial_weights(config["init_weights"], config.get("ckpt_path"), planner_class)
        if config.get("export"):
            self._check_export(Path(config["export"]))
        print(self.datamodule.describe())

    def after_fit(self) -> None:
        config = self.config[self.subcommand]
        export, trainer = config.get("export"), self.trainer
        if not export or not trainer.is_global_zero:
            return
        if trainer.global_step == 0:
            raise FitError(f"fit made no optimizer step, so {export} was not written: an untrained planner is no "
                           f"result. Check --trainer.max_steps / max_epochs / limit_train_batches.")
        minutes = next(cb for cb in trainer.callbacks if isinstance(cb, TrainClock)).minutes
        self._average_weights_in()
        if self._exports_itself():
            self.model.cpu().export(export, train_minutes=round(minutes, 2), train_steps=int(trainer.global_step),
                                    dataset_id=self.datamodule.dataset_id, command=" ".join(["diffplan", *self.command]))
            print(f"{type(self.model).__name__} folder written to {export} ({trainer.global_step} steps, "
                  f"{minutes:.1f} min)")
            return
        planner = self.model.cpu().to_planner(self.datamodule.task, self.datamodule.stride,
                                              **dict(config.get("planner") or {}))
        planner.save_pretrained(export, train_minutes=round(minutes, 2), train_steps=int(trainer.global_step),
                                dataset_id=self.datamodule.dataset_id, command=" ".join(["diffplan", *self.command]))
        print(f"planner written to {export} ({trainer.global_step} steps, {minutes:.1f} min)")

    def _average_weights_in(self) -> None:
        """Put the averaged (EMA) weights in the model before the export.

        WeightAveraging swaps them in at the end of the training loop, but a fit resumed at its own ``max_steps``
        (``--ckpt_path <step N checkpoint> --trainer.max_steps N``: export a planner from any checkpoint) never runs
        that loop, and would export the raw weights. The copy is idempotent, so a finished loop is unaffected.
        """
        for callback in self.trainer.callbacks:
            if isinstance(callback, WeightAveraging):
                callback.on_train_end(self.trainer, self.model)

    def _exports_itself(self) -> bool:
        """Models that are not planners (a critic) define ``export(folder, **metadata)`` instead of ``to_planner``."""
        return callable(getattr(self.model, "export", None))

    def _check_steps(self) -> None:
        trainer = self.trainer
        if trainer.max_steps == 0 or trainer.max_epochs == 0 or trainer.limit_train_batches == 0:
            raise FitError("--trainer.max_steps / max_epochs / limit_train_batches is 0: fit would make no "
                           "optimizer step. Give a positive number.")

    def _check_planner_settings(self, settings: dict[str, Any]) -> type:
        """Build the export's planner from the untrained module now, so a bad ``--planner`` fails before training;
        returns its class."""
        modes = {m: m.training for m in self.model.modules()}  # planners switch their shared modules to eval
        try:
            return type(self.model.to_planner(self.datamodule.task, self.datamodule.stride,
                                              **json.loads(json.dumps(settings))))
        except (TypeError, ValueError) as err:
            raise FitError(f"--planner {json.dumps(settings)}: {err}") from err
        finally:
            for module, training in modes.items():
                module.train(training)

    def _load_initial_weights(self, folder: str, ckpt_path: str | None, expected: type | None) -> None:
        """Copy the trained components of a planner folder (normalizer included) into the model before training;
        ``expected``: the class of the planner this model exports (None: the model is not a planner)."""
        from diffplan.diffusion.objective import load_planner_weights
        from diffplan.planner import Planner

        if ckpt_path:
            raise FitError(f"--init_weights {folder} and --ckpt_path {ckpt_path} both set the weights: keep "
                           f"--ckpt_path to resume a run, or --init_weights to fine-tune a planner folder.")
        if expected is None:
            raise FitError(f"--init_weights takes a planner folder; {type(self.model).__name__} is not a planner.")
        try:
            planner = Planner.from_pretrained(folder)
        except (PlannerFolderError, FileNotFoundError, ValueError) as err:
            raise FitError(f"--init_weights: {_one_line(str(err))}") from err
        if not isinstance(planner, expected):
            raise FitError(f"--init_weights {folder} holds a {type(planner).__name__}; this model trains a "
                           f"{expected.__name__}. Pass a folder of the same planner class.")
        if planner.task.name != self.datamodule.task.name:
            print(f"--init_weights: the folder was trained on {planner.task.name}, this run trains on "
                  f"{self.datamodule.task.name}; its normalizer is kept, so data are scaled as the weights expect.")
        try:
            new = load_planner_weights(self.model, planner, keep_new=True)
        except (RuntimeError, AttributeError) as err:
            raise FitError(f"--init_weights {folder}: its components do not fit this model's (same architecture "
                           f"arguments needed): {_one_line(str(err))[:300]}") from err
        print(f"initial weights from {folder}" + (f"; new in this model, left as initialized: {', '.join(new)}"
                                                  if new else ""))

    def _check_export(self, export: Path) -> None:
        """The export may not hold the run's own checkpoints or logs, nor replace a folder of user files."""
        trainer = self.trainer
        kept = [Path(trainer.default_root_dir), *(Path(cb.dirpath) for cb in trainer.checkpoint_callbacks
                                                  if getattr(cb, "dirpath", None))]
        kept += [Path(lg.save_dir) for lg in trainer.loggers if getattr(lg, "save_dir", None)]
        for place in kept:
            if place.resolve() == export.resolve() or export.resolve() in place.resolve().parents:
                raise FitError(f"--export {export} would replace {place}, where this run keeps its checkpoints or "
                               f"logs; export to a subfolder such as {place / 'planner'}.")
        try:
            check_replaceable(export)
        except PlannerFolderError as err:
            raise FitError(f"--export: {err}") from err

    def _check_last_checkpoint(self) -> None:
        """``--ckpt_path last`` with no last checkpoint would silently start from scratch: fail, saying where."""
        trainer = self.trainer
        callbacks = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
        if any(cb._find_last_checkpoints(trainer) for cb in callbacks):
            return
        # the folder Lightning resolves for a ModelCheckpoint without dirpath (it does so again at fit start)
        places = [str(cb.dirpath or cb._ModelCheckpoint__resolve_ckpt_dir(trainer)) for cb in callbacks]
        where = f"in {', '.join(places)}" if places else "anywhere: checkpointing is off"
        raise FitError(f"--ckpt_path last: no last checkpoint found {where}. Pass the checkpoint file, e.g. "
                       f"--ckpt_path runs/<run>/checkpoints/last.ckpt, or drop --ckpt_path to start anew.")


def quiet_lightning() -> None:
    """Hide what a diffplan user cannot act on: Lightning's cloud-product tips and its own deprecation notice."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_tip)  # added once per process
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip:")


def fit(argv: list[str], from_command_line: bool) -> None:
    """Run ``diffplan fit|validate ...``; raises ``FitError`` (one line) for what the user must fix."""
    quiet_lightning()
    try:
        DiffplanCLI(L.LightningModule, PlanningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                    args=None if from_command_line else argv, save_config_kwargs={"overwrite": True},
                    trainer_defaults={"callbacks": [TrainClock(), RandomState()]},
                    parser_kwargs={"exit_on_error": False}, command=argv)
    except argparse.ArgumentError as err:
        raise FitError(_one_line(str(err))) from err


def _one_line(message: str) -> str:
    """jsonargparse's nested error report, without its listing of the union types it tried."""
    noise = ("Does not validate against", "Subtypes:", "Errors:", "Given value", "Expected a <class 'NoneType'>")
    lines = [line.strip().removeprefix("- ") for line in message.splitlines() if line.strip()]
    return " ".join(line for line in lines if not line.startswith(noise))
