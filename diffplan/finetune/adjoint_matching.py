"""Adjoint Matching (Domingo-Enrich et al., ICLR 2025): fine-tune a planner's denoiser so that its memoryless chain
samples ``p_base(tau) exp(lam r(tau))``; steering then costs nothing at plan time.

Derivation of the DDPM form from the paper's flow form. The paper controls the memoryless SDE
``dX = (b(X, t) + sigma(t) u) dt + sigma(t) dB`` and regresses the control ``u = (b_ft - b_base) / sigma`` onto
``-sigma a~``, where the lean adjoint ``a~`` runs backwards from ``a~_1 = -lam grad r(X_1)`` with the base drift only
(``da~/dt = -a~^T grad_x b_base``); its loss is ``|(2 / sigma)(v_ft - v_base) + sigma a~|^2`` since
``b = 2 v - kappa x``. DDPM's ancestral step (eta = 1, the memoryless chain) is the Euler step of such an SDE:
``x_prev = mu(x_t) + s_t z`` with ``b h = mu - x_t`` and ``sigma sqrt(h) = s_t`` (s_t the posterior std). Substituting,
``u sqrt(h) = (mu_ft - mu_base) / s_t`` and ``sigma a~ sqrt(h) = s_t a~``, so per step (up to the constant 1 / h)

    L_t = | (mu_ft(x_t) - mu_base(x_t)) / s_t + s_t a~_prev |^2,     a~_prev_of_step = J_{mu_base}(x)^T a~

with ``a~`` taken at the step's output ``x_prev`` (the entry the control moves), starting at the clean sample with
``-lam grad r(x_0)``. For a Gaussian base and a linear reward this is exact: the tilted one-step kernel
``N(mu_base, s^2) exp(-a~ . x)`` has mean ``mu_base - s^2 a~``, where L_t = 0. The step mean is linear in the
prediction: with ``alpha = abar_t / abar_prev``, ``beta = 1 - alpha``,

    x0-prediction:      mu_ft - mu_base =  sqrt(abar_prev) beta / (1 - abar_t)        (x0_ft - x0_base)
    eps-prediction:     mu_ft - mu_base = -beta / (sqrt(alpha) sqrt(1 - abar_t))      (eps_ft - eps_base)
    s_t^2 = beta (1 - abar_prev) / (1 - abar_t)

so the eps loss is ``|c_t (eps_ft - eps_base) - s_t a~|^2`` with ``c_t = sqrt(beta) / (sqrt(alpha) sqrt(1 - abar_prev))``
and the x0 loss ``|k_t (x0_ft - x0_base) + s_t a~|^2`` with ``k_t = sqrt(abar_prev) sqrt(beta) / (sqrt(1 - abar_t)
sqrt(1 - abar_prev))``. The code computes ``mu`` with the scheduler's own step (so clipping of x0 is the sampler's);
``tests/test_adjoint_matching.py`` checks it against these closed forms. The last step (to clean data) has
``s_t = 0``: it is deterministic, carries no control and is left out of the loss. Pinned (inpainted) entries are
overwritten after every step, so their adjoint is zero and they are masked out of the loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.sampler import Trajectory, denoise, randn
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.objectives import Objective, objective_from_spec
from diffplan.planner import PlanContext, Planner

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RewardFn = Callable[[torch.Tensor], torch.Tensor]


def check_memoryless(eta: float) -> None:
    """Refuse any chain but DDPM's (eta = 1): only the memoryless chain makes the fine-tuned model sample the tilt."""
    if eta != 1.0:
        raise ValueError(f"Adjoint Matching needs the memoryless chain, DDPM's eta = 1, got eta = {eta}. With eta < 1 "
                         f"(DDIM: eta = 0) the start noise stays correlated with the plan, so fine-tuning tilts the "
                         f"start noise too and converges to the wrong distribution.")


def step_mean(model_fn: ModelFn, schedule: NoiseSchedule, x: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor,
              clip_denoised: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the DDPM (eta = 1) step x_t -> x_prev under ``model_fn``.

    Args:
        x: (B, H, C) samples at level ``t``; t, t_prev: (B,) or (B, H) levels.

    Returns:
        mean (B, H, C), std broadcast against it.
    """
    x0 = schedule.to_x0(model_fn(x, t), x, t)
    if clip_denoised:
        x0 = x0.clamp(-1.0, 1.0)
    c = schedule.coefficients(t, t_prev, 1.0, x)
    return schedule.step_mean(x, x0, c), c.sigma


def reward_gradient(reward_fn: RewardFn, x0: torch.Tensor) -> torch.Tensor:
    """(B, H, C) gradient of each row's reward (B,) with respect to its own clean sample x0 (B, H, C)."""
    with torch.enable_grad():
        x = x0.detach().requires_grad_(True)
        # rows are independent, so the gradient of the sum is every row's own gradient
        (grad,) = torch.autograd.grad(reward_fn(x).sum(), x)
    return grad


def lean_adjoint(base_fn: ModelFn, schedule: NoiseSchedule, trajectory: Trajectory, terminal: torch.Tensor,
                 free: torch.Tensor, clip_denoised: bool, stop: int = 0) -> list[torch.Tensor | None]:
    """The lean adjoint along a recorded chain: ``a[S] = terminal``, ``a[i] = J_{mu_base}(x_i)^T a[i + 1]``.

    Args:
        trajectory: samples (S + 1, B, H, C) and their levels, from ``denoise(..., return_trajectory=True)``.
        terminal: (B, H, C) ``-lam grad r(x_0)``.
        free: (B, H, C) 1 where the chain moves an entry, 0 where constraints pin it (zero adjoint there).
        stop: compute ``a[i]`` for ``i >= stop`` only (the loss needs ``a[i + 1]`` of its earliest step ``i``).

    Returns:
        S + 1 entries, (B, H, C) adjoints of each sample (None below ``stop``).
    """
    samples, levels = trajectory.samples, trajectory.timesteps
    steps = samples.shape[0] - 1
    adjoint: list[torch.Tensor | None] = [None] * (steps + 1)
    adjoint[steps] = terminal * free
    for i in range(steps - 1, stop - 1, -1):
        with torch.enable_grad():
            x = samples[i].detach().requires_grad_(True)
            mean, _ = step_mean(base_fn, schedule, x, levels[i], levels[i + 1], clip_denoised)
            # a true vector-Jacobian product: one backward pass with the adjoint as the output cotangent
            (vjp,) = torch.autograd.grad(mean, x, grad_outputs=adjoint[i + 1])
        adjoint[i] = vjp * free
    return adjoint


def loss_steps(levels: torch.Tensor, last_k: int, random_k: int, generator: torch.Generator | None = None
               ) -> list[int]:
    """The steps the loss sees: the last ``last_k`` stochastic steps and ``random_k`` drawn from the others.

    Args:
        levels: (S + 1, ...) the chain's levels; step i goes from ``levels[i]`` to ``levels[i + 1]``. Steps that end
            at clean data are deterministic (std 0) and never chosen.
    """
    stochastic = [i for i in range(levels.shape[0] - 1) if bool((levels[i + 1] >= 0).all())]
    last = stochastic[max(len(stochastic) - last_k, 0):]
    rest = stochastic[: len(stochastic) - len(last)]
    pick = torch.randperm(len(rest), generator=generator)[: max(random_k, 0)].tolist() if rest else []
    return sorted([rest[j] for j in pick] + last)


def matching_loss(model_fn: ModelFn, base_fn: ModelFn, schedule: NoiseSchedule, trajectory: Trajectory,
                  adjoint: list[torch.Tensor | None], steps: list[int], free: torch.Tensor, clip_denoised: bool,
                  loss_clip: float | None = None) -> torch.Tensor:
    """Mean over rows of ``sum_{i in steps} |(mu_ft - mu_base)(x_i) / s_i + s_i a[i + 1]|^2`` over free entries.

    The chosen steps go through each model in one batched call. ``loss_clip`` caps each (row, step) term, as the
    paper does against rare huge adjoints (its LCT).
    """
    k, b = len(steps), trajectory.samples.shape[1]
    x = trajectory.samples[steps].detach().flatten(0, 1)  # (K * B, H, C)
    t = trajectory.timesteps[steps].flatten(0, 1)
    t_prev = trajectory.timesteps[[i + 1 for i in steps]].flatten(0, 1)
    target = torch.cat([adjoint[i + 1] for i in steps]).detach()
    with torch.no_grad():
        mean_base, _ = step_mean(base_fn, schedule, x, t, t_prev, clip_denoised)
    mean_ft, std = step_mean(model_fn, schedule, x, t, t_prev, clip_denoised)
    residual = (mean_ft - mean_base) / std + std * target
    terms = (residual.pow(2) * free.repeat(k, 1, 1)).flatten(1).sum(1)
    if loss_clip is not None:
        terms = terms.clamp(max=loss_clip)
    return terms.view(k, b).sum(0).mean()


def adjoint_matching_loss(model_fn: ModelFn, base_fn: ModelFn, schedule: NoiseSchedule, noise: torch.Tensor,
                          timesteps: torch.Tensor, reward_fn: RewardFn, lam: float, constraints: Inpaint | None = None,
                          clip_denoised: bool = False, last_k: int = 5, random_k: int = 5,
                          loss_clip: float | None = None, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """One Adjoint Matching loss: sample the memoryless chain with ``model_fn`` from ``noise`` (no gradient), run the
    lean adjoint back through ``base_fn`` from ``-lam grad r(x_0)``, and regress on the chosen steps.

    Args:
        model_fn, base_fn: the fine-tuned and the frozen base prediction ``(x_t (B, H, C), t (B,)) -> x0 or eps``.
        noise: (B, H, C) start samples; timesteps: (S,) decreasing levels (``NoiseSchedule.sampling_timesteps``).
        reward_fn: normalized clean samples (B, H, C) -> (B,) rewards.
        constraints: inpainting of the chain; pinned entries get zero adjoint and no loss.

    Returns:
        the scalar loss (a graph into ``model_fn``'s parameters) and the clean samples (B, H, C).
    """
    _, trajectory = denoise(model_fn, schedule, noise, timesteps, constraints=constraints, eta=1.0,
                            clip_denoised=clip_denoised, generator=generator, return_trajectory=True)
    free = inpaint_mask(constraints, noise)
    x0 = trajectory.samples[-1]
    terminal = -lam * reward_gradient(reward_fn, x0)
    steps = loss_steps(trajectory.timesteps, last_k, random_k, generator)
    if not steps:
        raise ValueError(f"A chain of {len(timesteps)} step(s) has no stochastic step to train on; use at least 2.")
    adjoint = lean_adjoint(base_fn, schedule, trajectory, terminal, free, clip_denoised, stop=min(steps) + 1)
    return matching_loss(model_fn, base_fn, schedule, trajectory, adjoint, steps, free, clip_denoised, loss_clip), x0


def inpaint_mask(constraints: Inpaint | None, like: torch.Tensor) -> torch.Tensor:
    """(B, H, C) float: 1 for entries the chain moves, 0 for pinned ones."""
    if constraints is None:
        return torch.ones_like(like)
    return (~constraints.mask).to(like.dtype)


def to_env(planner: Planner, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """A planner's normalized packed sample (B, H, C) as plan fields in environment units (differentiable)."""
    fields = planner.layout.unpack(x)
    return {name: planner.normalizer.unnormalize(name, v) for name, v in fields.items() if v.shape[-1]}


class AdjointMatching(L.LightningModule):
    """Fine-tune a planner's denoiser toward ``p_base(tau) exp(lam r(tau))`` (see the module docstring).

    The base planner and its denoiser stay frozen; ``denoiser`` is the trainable copy. Each training step samples
    plans for a batch of contexts with the fine-tuned model (no gradient), runs the lean adjoint back through the
    base model and regresses the control on the chosen steps. ``save_pretrained`` writes a planner folder.

    Args:
        planner: a planner folder (or a loaded Planner) whose planner is one denoising chain (Diffuser, Decision
            Diffuser; a Hierarchical Diffuser's ``high/`` level).
        objective: the reward r, an objective spec (``diffplan.objectives``) or Objective, in environment units.
        lam: the reward multiplier lambda; 0 keeps the base.
        num_inference_steps: chain length used here and by the exported planner (default: the planner's).
        eta: must be 1 (the memoryless chain); kept as an argument so that a DDIM setting fails loudly.
        last_k, random_k: the loss sees the last ``last_k`` stochastic steps and ``random_k`` of the others.
        loss_clip: cap on each (plan, step) loss term (None: no cap).
        learning_rate, weight_decay: AdamW on the fine-tuned denoiser.
        samples_per_context: plans per context row of a batch.
    """

    def __init__(self, planner: str | Path | Planner, objective: dict[str, Any] | list[dict[str, Any]] | Objective,
                 lam: float = 1.0, num_inference_steps: int | None = None, eta: float = 1.0, last_k: int = 5,
                 random_k: int = 5, loss_clip: float | None = None, learning_rate: float = 1e-5,
                 weight_decay: float = 0.0, samples_per_context: int = 1):
        super().__init__()
        check_memoryless(eta)
        if lam < 0:
            raise ValueError(f"lam must be >= 0 (a larger reward is better), got {lam}.")
        self.save_hyperparameters(ignore=["planner", "objective"])
        self.base_path = None if isinstance(planner, Planner) else str(planner)
        # a planner object is copied: freezing the base must not change the caller's planner
        base = copy.deepcopy(planner) if isinstance(planner, Planner) else Planner.from_pretrained(planner)
        if type(base).chain is Planner.chain:
            raise ValueError(f"Adjoint Matching fine-tunes one denoising chain; a {type(base).__name__} is not one "
                             f"(for a Hierarchical Diffuser, fine-tune its high/ folder).")
        base.requires_grad_(False)
        self.base = base
        self.denoiser = copy.deepcopy(base.denoiser).requires_grad_(True)
        self.spec = None if isinstance(objective, Objective) else objective
        self.reward = objective_from_spec(objective, base.task)
        self.lam, self.last_k, self.random_k, self.loss_clip = float(lam), last_k, random_k, loss_clip
        self.samples_per_context = samples_per_context
        self.num_inference_steps = num_inference_steps or base.num_inference_steps
        self.timesteps = base.schedule.sampling_timesteps(self.num_inference_steps)
        self.optim = {"lr": learning_rate, "weight_decay": weight_decay}
        self.train()

    def train(self, mode: bool = True) -> AdjointMatching:
        """Both models stay in eval mode: base and copy must be the same function at the start (no dropout)."""
        super().train(mode)
        self.base.eval()
        self.denoiser.eval()
        return self

    def reward_fn(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) reward of normalized samples (B, H, C), through the planner's normalizer and layout."""
        return self.reward(to_env(self.base, x))

    def contexts(self, batch: dict[str, torch.Tensor]) -> PlanContext:
        """Plan contexts from a batch: its ``observations`` ((B, O), or windows (B, H, O): the first state) and, for
        goal tasks, its ``goal``; each row repeated ``samples_per_context`` times."""
        obs = batch["observations"]
        obs = obs[:, 0] if obs.dim() == 3 else obs
        goal = batch.get("goal") if self.base.task.goal_dims else None
        n = self.samples_per_context
        return PlanContext(obs=obs.float().repeat_interleave(n, 0),
                           goal=None if goal is None else goal.float().repeat_interleave(n, 0))

    def losses(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
               ) -> dict[str, torch.Tensor]:
        """One fine-tuning step's loss and the mean reward of the plans it sampled."""
        context = self.contexts(batch).to(self.device)
        b = context.batch_size
        x = randn((b, self.base.horizon, self.base.layout.transition_dim), generator, self.device)
        chain = self.base.chain(context, x)
        loss, x0 = adjoint_matching_loss(chain.prediction(self.denoiser), chain.prediction(self.base.denoiser),
                                         self.base.schedule, x, self.timesteps, self.reward_fn, self.lam,
                                         chain.constraints, chain.clip_denoised, self.last_k, self.random_k,
                                         self.loss_clip, generator)
        with torch.no_grad():
            reward = self.reward_fn(x0).mean()
        return {"loss": loss, "reward": reward}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, on_step=True, on_epoch=False,
                      batch_size=batch["observations"].shape[0])
        return out["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.denoiser.parameters(), **self.optim)

    # -- export ---------------------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The ``"finetune"`` entry of the exported planner.json."""
        return {"method": "adjoint_matching", "base": self.base_path, "objective": self.spec, "lambda": self.lam,
                "num_inference_steps": self.num_inference_steps, "eta": 1.0, "last_k": self.last_k,
                "random_k": self.random_k, "loss_clip": self.loss_clip, "learning_rate": self.optim["lr"],
                "samples_per_context": self.samples_per_context,
                "steps": int(self.trainer.global_step) if self._trainer is not None else None}

    def to_planner(self) -> Planner:
        """The base planner with the fine-tuned denoiser, sampling the memoryless chain it was fine-tuned on."""
        base = self.base
        components = {name: getattr(base, name) for name in base.components}
        components["denoiser"] = copy.deepcopy(self.denoiser).requires_grad_(False)
        config = {**base.config, "eta": 1.0, "num_inference_steps": self.num_inference_steps}
        return type(base)(task=base.task, **components, **config).to(self.device)

    def save_pretrained(self, path: str | Path, **metadata: Any) -> None:
        """Write the fine-tuned planner folder; planner.json records ``"finetune"`` (base, objective, lambda, ...)."""
        readme = (f"# Adjoint Matching fine-tune of {self.base_path or 'a planner'}\n\nReward: `{self.spec}`, "
                  f"lambda = {self.lam}, {self.num_inference_steps} DDPM steps (eta = 1).\n")
        self.to_planner().cpu().save_pretrained(path, readme=readme, finetune=self.record(), **metadata)

