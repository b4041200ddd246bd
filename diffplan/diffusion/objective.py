"""TrajectoryDiffusion: the denoising objective over trajectory windows, as a LightningModule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from diffplan.configurable import class_path, resolve_class
from diffplan.data.layout import TrajectoryLayout
from diffplan.data.normalizer import Normalizer
from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.optim import adamw_with_warmup
from diffplan.diffusion.schedules import NoiseSchedule


class TrajectoryDiffusion(L.LightningModule):
    """Denoise (B, H, C) trajectories; planners subclass it and override only what differs.

    Overridable: ``sample_timesteps`` (e.g. per-token for Diffusion Forcing), ``make_target``,
    ``training_constraints`` (what is inpainted with clean values, as at sampling time), ``condition``.

    Args:
        normalizer: fitted on the dataset (linked from the datamodule), saved with the weights.
        horizon: H, plan points per trajectory.
        denoiser_class: import path of the denoiser; built as ``cls(transition_dim=C, horizon=H, **kwargs)``.
        value_head: also train a value head on the noisy trajectories (for value guidance).
        goal_dims: observation dims pinned at the last plan point (start state is always pinned).
        diffuse_actions: False diffuses states only (actions then come from elsewhere, e.g. inverse dynamics).
        action_weight: loss weight of the first plan point's actions, the action a planner executes (Diffuser
            uses 10 for locomotion; 1 = no extra weight).
    """

    def __init__(self, normalizer: Normalizer, horizon: int,
                 denoiser_class: str = "diffplan.nn.unet.TemporalUnet",
                 denoiser_kwargs: dict[str, Any] | None = None, num_train_timesteps: int = 100,
                 beta_schedule: str = "squaredcos_cap_v2", prediction_type: str = "sample",
                 value_head: bool = True, value_weight: float = 1.0, goal_dims: tuple[int, ...] = (),
                 learning_rate: float = 2e-4, weight_decay: float = 0.0, warmup_steps: int = 500,
                 bf16: bool = False, diffuse_actions: bool = True, action_weight: float = 1.0):
        super().__init__()
        self.save_hyperparameters(ignore=["normalizer"])
        self.normalizer = normalizer
        dims = normalizer.config["dims"]
        self.layout = TrajectoryLayout(obs_dim=dims["observations"], act_dim=dims["actions"] if diffuse_actions else 0)
        self.horizon = horizon
        self.schedule = NoiseSchedule(num_train_timesteps, beta_schedule, prediction_type)
        self.denoiser = self.build_denoiser(denoiser_class, denoiser_kwargs or {})
        self.value = None
        if value_head:
            from diffplan.nn.value import TemporalValue

            kw = {k: v for k, v in (denoiser_kwargs or {}).items() if k in ("dim", "dim_mults", "kernel")}
            self.value = TemporalValue(self.layout.transition_dim, horizon, **kw)
        self.goal_dims = list(goal_dims)
        # kept as attributes: self.hparams of a module nested in another (Hierarchical Diffuser) is the outer one's
        self.bf16, self.value_weight, self.action_weight = bf16, value_weight, action_weight
        self.optim = {"learning_rate": learning_rate, "weight_decay": weight_decay, "warmup_steps": warmup_steps}
        self.planner_settings: dict[str, Any] | None = None  # set by from_planner

    def build_denoiser(self, denoiser_class: str, denoiser_kwargs: dict[str, Any]) -> nn.Module:
        """The denoiser of (B, H, C) windows; override when the model sees the window another way (tokens)."""
        return resolve_class(denoiser_class, nn.Module)(transition_dim=self.layout.transition_dim,
                                                        horizon=self.horizon, **denoiser_kwargs)

    def to_planner(self, task: Any, stride: int, **planner_kwargs: Any) -> Any:
        """The Planner that samples this objective's model (each algorithm defines its own)."""
        raise NotImplementedError(f"{type(self).__name__} does not define to_planner().")

    @classmethod
    def from_planner(cls, path: str | Path, **overrides: Any) -> TrajectoryDiffusion:
        """The training module of a planner folder, the reverse of ``to_planner``: its settings and weights.

        ``planner_settings`` on the result holds the folder's task, stride and sampler settings, so
        ``module.to_planner(**module.planner_settings)`` exports the same planner again (after fine-tuning, a new one).

        Args:
            path: a planner folder that ``to_planner(...).save_pretrained`` of this class wrote.
            overrides: replace training arguments (``learning_rate``, ``warmup_steps``, ...).
        """
        from diffplan.planner import Planner

        planner = Planner.from_pretrained(path)
        arguments, settings = cls.planner_arguments(planner)
        module = cls(**{**arguments, **overrides})
        load_planner_weights(module, planner)
        module.planner_settings = settings
        return module

    @classmethod
    def planner_arguments(cls, planner: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(``__init__`` arguments, ``to_planner`` arguments) that rebuild ``planner``'s module and re-export it."""
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from a planner folder.")

    # -- data ---------------------------------------------------------------------------------------------
    def normalize_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw fields -> normalized (B, H, C)."""
        fields = ("actions", "observations") if self.layout.act_dim else ("observations",)
        return self.layout.pack({k: self.normalizer.normalize(k, batch[k]) for k in fields})

    def training_constraints(self, x0: torch.Tensor) -> Inpaint:
        """Start state and goal dims at the end, pinned to the window's own clean values."""
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[:, 0, self.layout.channels("observations")] = True
        if self.goal_dims:
            mask[:, -1, self.layout.channels("observations", self.goal_dims)] = True
        return Inpaint(mask, x0)

    # -- objective ----------------------------------------------------------------------------------------
    def sample_timesteps(self, x0: torch.Tensor) -> torch.Tensor:
        """(B,) uniform timesteps; override for per-token (B, H) noise levels."""
        return torch.randint(0, self.schedule.num_train_timesteps, (x0.shape[0],), device=x0.device)

    def make_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.target(x0, noise)

    def condition(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Condition vector for the denoiser (None for Diffuser)."""
        return None

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = self.normalize_batch(batch)
        constraints = self.training_constraints(x0)
        t = self.sample_timesteps(x0)
        noise = torch.randn_like(x0)
        x_t = constraints.apply(self.schedule.add_noise(x0, noise, t))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            prediction = self.denoiser(x_t, t, self.condition(batch)).float()
        free = (~constraints.mask).float()
        weight = free
        if self.action_weight != 1.0 and self.layout.act_dim:
            weight = free.clone()
            weight[:, 0, self.layout.channels("actions")] *= self.action_weight
        target = self.make_target(x0, noise, t)
        out = {"diffusion": ((prediction - target) ** 2 * weight).sum() / free.sum()}
        if self.value is not None:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                v = self.value(x_t.detach(), t).float()
            out["value"] = F.mse_loss(v, batch["value"])
        out["loss"] = out["diffusion"] + self.value_weight * out.get("value", 0.0)
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, on_step=True, on_epoch=False,
                      batch_size=batch["actions"].shape[0], sync_dist=False)
        return out["loss"]

    def configure_optimizers(self) -> Any:
        return adamw_with_warmup(self.parameters(), self.device, **self.optim)


def denoiser_arguments(planner: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """``denoiser_class``, ``denoiser_kwargs`` and the schedule arguments that rebuild ``planner``'s denoiser."""
    kwargs = {k: v for k, v in planner.denoiser.config.items() if k not in ("transition_dim", "horizon", *drop)}
    return {"denoiser_class": class_path(planner.denoiser), "denoiser_kwargs": kwargs, **planner.schedule.config}


def load_planner_weights(module: nn.Module, planner: Any, keep_new: bool = False) -> list[str]:
    """Copy every component of ``planner`` into the same-named submodule of ``module`` (shapes must match).

    With ``keep_new``, parameters that ``module`` has and the planner lacks (a part added for fine-tuning, such as
    a goal embedding) keep their initial values; their names are returned. Anything else that differs raises.
    """
    new: list[str] = []
    for name in planner.components:
        component = getattr(planner, name)
        if component is not None:
            missing, unexpected = getattr(module, name).load_state_dict(component.state_dict(), strict=not keep_new)
            if unexpected:
                raise RuntimeError(f"{name} has no parameters {unexpected}, which the planner folder holds.")
            new += [f"{name}.{key}" for key in missing]
    return new


def sampler_settings(planner: Any, supplied: tuple[str, ...]) -> dict[str, Any]:
    """``planner``'s config without the keys that ``to_planner`` fills in itself, plus its task."""
    return {"task": planner.task, **{k: v for k, v in planner.config.items() if k not in supplied}}
