"""Training-free guidance (TFG, Ye et al., NeurIPS 2024) on the sampling loop's hooks, and the older methods it
unifies (DPS, LGD, FreeDoM, MPGD, UGD) as presets.

One step t -> t_prev, with the objective's value v = log f (``diffplan.objectives``: higher is better) and
``f~(x) = log mean_k exp v(x + eps_k)``, ``eps_k ~ N(0, gamma_t^2)`` (implicit dynamics; ``f~ = v`` at gamma 0):

- variance guidance: ``Delta_t = rho_t grad_{x_t} f~(x0(x_t))``, through the denoiser (``guide_x0``);
- mean guidance: ``x0' = x0``, ``N_iter`` times ``x0' += mu_t grad f~(x0')``; ``Delta_0 = x0' - x0``;
- update: ``x_prev = DDIM(x_t, x0) + Delta_t / sqrt(alpha_t) + sqrt(alpha_bar_prev) Delta_0`` (``guide_step``),
  ``alpha_t = alpha_bar_t / alpha_bar_prev``;
- recurrence: the loop re-noises x_prev back to t and repeats the step ``N_recur`` times.

Schedules: ``rho_t = rho * s_t * S / sum_k s_k`` over the S steps of the chain (mean 1), with ``s_t = alpha_t``
("increase"), ``1 - alpha_t`` ("decrease") or 1 ("constant"); mu likewise; ``gamma_t = gamma sqrt(1 - alpha_bar_t)``.
The objective sees x0 with the constraints re-applied, in environment units; updates are masked by ``ctx.free``
(pinned entries never move) and by ``moves`` (held tokens of per-token chains).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from diffplan.diffusion.sampler import randn
from diffplan.guidance.base import Guidance, GuidanceContext
from diffplan.objectives import objective_from_spec

if TYPE_CHECKING:
    from diffplan.planner import Planner

ObjectiveFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]
SCHEDULES = ("increase", "decrease", "constant")


def step_weight(kind: str, ctx: GuidanceContext, like: torch.Tensor) -> torch.Tensor:
    """TFG's schedule at this step, ``s_t * S / sum_k s_k`` over the chain, broadcast against ``like`` (B, H, C).

    Without the chain (``ctx.timesteps`` None, hand-built contexts) it is ``s_t`` unnormalized.
    """
    a = ctx.schedule.alphas_cumprod.to(like.device, like.dtype)

    def s_of(t: torch.Tensor, t_prev: torch.Tensor) -> torch.Tensor:
        alpha = a[t.long() + 1] / a[t_prev.long() + 1]
        s = {"increase": alpha, "decrease": 1 - alpha, "constant": torch.ones_like(alpha)}[kind]
        return s * (t != t_prev)

    current = s_of(ctx.t.to(like.device), ctx.t_prev.to(like.device))
    if ctx.timesteps is not None and kind != "constant":  # constant: the normalization is exactly 1 (count / count)
        rows = ctx.timesteps.to(like.device)
        following = torch.cat([rows[1:], torch.full_like(rows[:1], -1)])
        total, count = s_of(rows, following).sum(0), (rows != following).sum(0)
        current = current * count / total.clamp(min=1e-12)
    current = current.expand(like.shape[0]) if current.dim() == 0 else current
    return current.reshape(*current.shape, *([1] * (like.dim() - current.dim())))


class TFG(Guidance):
    """Training-free guidance towards higher ``objective`` values.

    Args:
        objective: ``plan in environment units -> (B,)`` values to maximize (``diffplan.objectives``).
        rho: variance-guidance strength rho-bar (gradient through the denoiser; costs one backward per step).
        mu: mean-guidance strength mu-bar (gradient on x0 only; cheap).
        gamma: implicit-dynamics noise gamma-bar (normalized units; 0 = off).
        recur_steps: N_recur, repeats of every step (re-noised in between).
        iter_steps: N_iter, inner gradient steps on x0 for the mean guidance.
        n_samples: Monte-Carlo samples of the implicit dynamics (used when gamma > 0).
        rho_schedule, mu_schedule: "increase" (default), "decrease" or "constant".
        normalize_by_value: divide the variance-guidance gradient by ``|f~|`` per sample (DPS's step size).

    Defaults (rho = mu = 0.1, gamma = 0, N_recur = N_iter = 1) are moderate steps for objectives of order one
    in environment units on planners normalized to about [-1, 1]; the benchmark search tunes them per task.
    With rho = mu = 0 the guidance is off: no gradients, no recurrence, bit-identical to unguided sampling.
    """

    def __init__(self, objective: ObjectiveFn, rho: float = 0.1, mu: float = 0.1, gamma: float = 0.0,
                 recur_steps: int = 1, iter_steps: int = 1, n_samples: int = 1, rho_schedule: str = "increase",
                 mu_schedule: str = "increase", normalize_by_value: bool = False):
        super().__init__()
        for name, value in (("rho", rho), ("mu", mu), ("gamma", gamma)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"TFG: {name!r} must be a number >= 0, got {value!r}.")
        for name, value in (("recur_steps", recur_steps), ("iter_steps", iter_steps), ("n_samples", n_samples)):
            if not isinstance(value, int) or value < (0 if name == "iter_steps" else 1):
                raise ValueError(f"TFG: {name!r} must be an integer >= {0 if name == 'iter_steps' else 1}, "
                                 f"got {value!r}.")
        for name, value in (("rho_schedule", rho_schedule), ("mu_schedule", mu_schedule)):
            if value not in SCHEDULES:
                raise ValueError(f"TFG: {name!r} must be one of {list(SCHEDULES)}, got {value!r}.")
        self.objective = objective
        self.rho, self.mu, self.gamma = float(rho), float(mu), float(gamma)
        self.iter_steps, self.n_samples = iter_steps, n_samples
        self.rho_schedule, self.mu_schedule, self.normalize_by_value = rho_schedule, mu_schedule, normalize_by_value
        self.active = self.rho > 0 or (self.mu > 0 and iter_steps > 0)
        self.needs_grad = self.rho > 0
        self.recurrence = recur_steps if self.active else 1

    def value(self, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        """(B,) objective of normalized samples ``x0`` (B, H, C), constraints re-applied, in environment units."""
        return self.objective(ctx.to_env(ctx.apply_constraints(x0)))

    def smoothed(self, x0: torch.Tensor, ctx: GuidanceContext, gamma_t: torch.Tensor) -> torch.Tensor:
        """(B,) ``log mean_k exp value(x0 + gamma_t eps_k)`` (plain ``value`` when gamma is 0); noise from
        ``ctx.generator``, drawn as one (n_samples, B, H, C) tensor."""
        if self.gamma == 0:
            return self.value(x0, ctx)
        b = x0.shape[0]
        eps = randn((self.n_samples, *x0.shape), ctx.generator, x0.device, x0.dtype)
        perturbed = ctx.apply_constraints(x0[None] + gamma_t * eps)  # (n, B, H, C): the (B, H, C) pins broadcast
        values = self.objective(ctx.to_env(perturbed.flatten(0, 1))).view(self.n_samples, b)
        return torch.logsumexp(values, dim=0) - math.log(self.n_samples)

    def guide_x0(self, x0: torch.Tensor, x_t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        if not self.active:
            return x0
        c = ctx.coefficients
        keep = c.moves.to(x0.dtype) * (1.0 if ctx.free is None else ctx.free.to(x0.dtype))
        gamma_t = self.gamma * (1 - c.alpha_bar).sqrt()
        delta = torch.zeros_like(x0)
        if self.rho > 0:
            f = self.smoothed(x0, ctx, gamma_t)
            (grad,) = torch.autograd.grad(f.sum(), x_t, retain_graph=True)  # later hooks may use the graph
            if self.normalize_by_value:
                grad = grad / f.detach().abs().clamp(min=1e-12).reshape(-1, *([1] * (grad.dim() - 1)))
            rho_t = self.rho * step_weight(self.rho_schedule, ctx, x0)
            delta = delta + rho_t * grad / c.alpha.sqrt()
        if self.mu > 0 and self.iter_steps > 0:
            mu_t = self.mu * step_weight(self.mu_schedule, ctx, x0)
            start = x0.detach()
            moved = start
            with torch.enable_grad():
                for _ in range(self.iter_steps):
                    moved = moved.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(self.smoothed(moved, ctx, gamma_t).sum(), moved)
                    moved = moved + mu_t * grad * keep
            delta = delta + c.alpha_bar_prev.sqrt() * (moved.detach() - start)
        ctx.scratch[self._key] = (delta * keep).detach()
        return x0

    def guide_step(self, x_prev: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        delta = ctx.scratch.get(self._key)
        return x_prev if delta is None else x_prev + delta

    @property
    def _key(self) -> str:
        return f"tfg-{id(self)}"


# -- presets (the older methods as special cases; constant step sizes, as those methods use) ---------------------
def dps(objective: ObjectiveFn, rho: float = 0.1) -> TFG:
    """DPS: variance guidance only, the gradient divided by ``|log f|`` (N_recur = 1, N_iter = 0, gamma = 0)."""
    return TFG(objective, rho=rho, mu=0.0, iter_steps=0, rho_schedule="constant", normalize_by_value=True)


def lgd(objective: ObjectiveFn, rho: float = 0.1, gamma: float = 0.1, n_samples: int = 4) -> TFG:
    """LGD: variance guidance on the Monte-Carlo smoothed objective (gamma_t = gamma sqrt(1 - alpha_bar_t))."""
    return TFG(objective, rho=rho, mu=0.0, gamma=gamma, iter_steps=0, n_samples=n_samples, rho_schedule="constant")


def freedom(objective: ObjectiveFn, rho: float = 0.1, recur_steps: int = 2) -> TFG:
    """FreeDoM: variance guidance with recurrence (time travel)."""
    return TFG(objective, rho=rho, mu=0.0, recur_steps=recur_steps, iter_steps=0, rho_schedule="constant")


def mpgd(objective: ObjectiveFn, mu: float = 0.1) -> TFG:
    """MPGD: one mean-guidance step on x0, no gradient through the denoiser (N_iter = 1)."""
    return TFG(objective, rho=0.0, mu=mu, iter_steps=1, mu_schedule="constant")


def ugd(objective: ObjectiveFn, rho: float = 0.1, mu: float = 0.1, recur_steps: int = 2, iter_steps: int = 2) -> TFG:
    """UGD: variance (forward) and mean (backward, N_iter steps) guidance with recurrence."""
    return TFG(objective, rho=rho, mu=mu, recur_steps=recur_steps, iter_steps=iter_steps, rho_schedule="constant",
               mu_schedule="constant")


PRESETS: dict[str, Callable[..., TFG]] = {"tfg": TFG, "dps": dps, "lgd": lgd, "freedom": freedom, "mpgd": mpgd,
                                          "ugd": ugd}
_HYPER = {"tfg": ("rho", "mu", "gamma", "recur_steps", "iter_steps", "n_samples", "rho_schedule", "mu_schedule"),
          "dps": ("rho",), "lgd": ("rho", "gamma", "n_samples"), "freedom": ("rho", "recur_steps"), "mpgd": ("mu",),
          "ugd": ("rho", "mu", "recur_steps", "iter_steps")}


def from_spec(spec: dict[str, Any], planner: Planner) -> TFG:
    """``{"method": "tfg" | "dps" | "lgd" | "freedom" | "mpgd" | "ugd", <hyper-parameters>, "objective": ...}``;
    hyper-parameters left out take the method's defaults."""
    method = spec["method"]
    args = {k: v for k, v in spec.items() if k not in ("method", "objective")}
    unknown = set(args) - set(_HYPER[method])
    if unknown or "objective" not in spec:
        raise ValueError(f"Guidance {method!r} takes \"objective\" and optionally {list(_HYPER[method])}; "
                         + (f"unknown {sorted(unknown)}." if unknown else "the objective is missing."))
    objective = objective_from_spec(spec["objective"], planner.task).to(planner.device)
    return PRESETS[method](objective, **args)
