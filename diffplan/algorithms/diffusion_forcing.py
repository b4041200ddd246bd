"""Diffusion Forcing (Chen et al., NeurIPS 2024): per-token noise levels, a causal denoiser, scheduling matrices.

- A token packs ``frame_stack`` consecutive env steps of ``[actions, observations]``; the denoiser is a transformer
  over tokens with one noise level per token (causal by default, so a plan can be extended past its horizon).
- Training draws an independent level per token, weights the loss by min(SNR, 5) (DF's), cuts each window at a
  random token and forces the tail to pure noise at a small loss weight (flexible horizon), and gives the first
  token a low level half of the time (it plays the observed context at sampling time). With ``goal_pinning`` (a
  non-causal denoiser only) the goal dims of the last kept step are pinned clean, as Diffuser pins its goal, so
  that ``goal_inpainting`` at sampling time is in distribution.
- Sampling runs the one ``denoise`` loop over env steps ``(B, tokens * frame_stack, C)`` with a scheduling matrix
  (full sequence, pyramid, autoregressive) repeated over each token's steps; the denoiser sees tokens. The current
  observation is inpainted; in ``rollout`` the last tokens of the previous window are clean context (t = -1).
- Goals enter through guidance on the predicted x0: ``tanh(|p - g| / 2)`` summed over planned positions, its
  gradient taken through the denoiser (DPS); Monte-Carlo guidance (MCTG) averages each token's gradient over
  several re-noised samples of the tokens after it.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import nn

from diffplan.action_sources import InverseDynamicsActions
from diffplan.configurable import resolve_class
from diffplan.data.layout import TrajectoryLayout
from diffplan.data.normalizer import Normalizer
from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.objective import TrajectoryDiffusion
from diffplan.diffusion.sampler import denoise, randn
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.diffusion.scheduling import scheduling_matrix
from diffplan.guidance.base import Guidance, GuidanceContext, ModelFn
from diffplan.maze import CorridorDistance
from diffplan.nn.inverse_dynamics import InverseDynamics
from diffplan.planner import Plan, PlanContext, Planner, steer
from diffplan.tasks import Task

SCHEDULING = ("full_sequence", "pyramid", "autoregressive")
GOAL_LOSSES = ("tanh", "pseudo_huber", "approach")


def pack_tokens(x: torch.Tensor, frame_stack: int) -> torch.Tensor:
    """Env steps (B, N * frame_stack, C) -> tokens (B, N, frame_stack * C)."""
    return rearrange(x, "b (n f) c -> b n (f c)", f=frame_stack)


def unpack_tokens(tokens: torch.Tensor, frame_stack: int) -> torch.Tensor:
    """Tokens (B, N, frame_stack * C) -> env steps (B, N * frame_stack, C)."""
    return rearrange(tokens, "b n (f c) -> b (n f) c", f=frame_stack)


def token_model(denoiser: nn.Module, frame_stack: int, cond: torch.Tensor | None = None) -> ModelFn:
    """The token denoiser as a model of env steps: ``(x (B, H, C), t (B,) or (B, H)) -> (B, H, C)``.

    Each token's level is read from its first step; clean tokens (t = -1) are shown to the network as level 0, the
    lowest level it was trained on. ``cond`` (B, cond_dim): the condition of a goal-conditioned denoiser.
    """

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_tokens = t[:, ::frame_stack] if t.dim() == 2 else t
        tokens = pack_tokens(x, frame_stack), t_tokens.clamp(min=0)
        return unpack_tokens(denoiser(*tokens) if cond is None else denoiser(*tokens, cond), frame_stack)

    return model_fn


def min_snr_weight(schedule: NoiseSchedule, t: torch.Tensor, like: torch.Tensor, clip: float = 5.0) -> torch.Tensor:
    """Min-SNR loss weight at levels ``t`` (B, H), broadcast against ``like``: min(SNR, clip) for x0 prediction,
    min(SNR, clip) / SNR for epsilon prediction (both weight the x0 error by min(SNR, clip))."""
    a = schedule.alpha_bar(t, like)
    snr = a / (1 - a).clamp(min=1e-12)
    clipped = snr.clamp(max=clip)
    return clipped if schedule.prediction_type == "sample" else clipped / snr.clamp(min=1e-12)


class DiffusionForcing(TrajectoryDiffusion):
    """The DF objective over windows of ``horizon = tokens * frame_stack`` env steps (data stride 1).

    Args:
        frame_stack: env steps per token (DF uses 10).
        causal: the transformer attends only to earlier tokens (needed for ``rollout``; DF v1.5 plans non-causal).
        snr_clip: the min-SNR weight's cap (DF: 5). None: the plain MSE of the prediction target, as Diffuser
            trains. With x0 prediction min(SNR, 5) weights the noisiest levels by about 0, and there the pinned start
            (and goal) must shape the plan; DF makes up for it with 200k steps of batch 1024.
        tail_weight: loss weight of the tokens after the random cut (0 disables the cut; DF: 0.05).
        low_noise_first: probability that the first token's level is drawn below K / 4 (DF: 0.5).
        goal_pinning: pin the goal dims (``goal_dims``, the task's positions) of each window's last kept step to their
            clean values in training, as ``goal_inpainting`` pins the goal at sampling time. Needs ``causal=False``:
            a causal denoiser never lets earlier tokens see the end of the plan.
        goal_condition: the denoiser also takes the episode's goal position (``goal_dims``, normalized) as a
            condition, so a plan knows where it must end and stop, not only a guidance pull. Train it on windows that do
            not run on into the next episode (``join_episodes: false``): those would show the ball leaving its goal.
            The goal embedding starts at zero, so a fine-tune from an unconditioned folder (``fit --init_weights``)
            begins from that folder's plans.
        inverse_dynamics_kwargs: also train an ``InverseDynamics`` head (its size: hidden, depth) on each window's
            first transition, for ``action_source="inverse_dynamics"`` (None: no head).
        denoiser_class, denoiser_kwargs: a transformer taking per-token timesteps (``TransformerDenoiser``).
        Other arguments: as ``TrajectoryDiffusion`` (schedule, optimizer); there is no value head.
    """

    def __init__(self, normalizer: Normalizer, horizon: int, frame_stack: int = 10, causal: bool = True,
                 snr_clip: float | None = 5.0, tail_weight: float = 0.05, low_noise_first: float = 0.5,
                 goal_pinning: bool = False, goal_condition: bool = False,
                 inverse_dynamics_kwargs: dict[str, Any] | None = None,
                 denoiser_class: str = "diffplan.nn.transformer.TransformerDenoiser",
                 denoiser_kwargs: dict[str, Any] | None = None, prediction_type: str = "sample",
                 goal_dims: tuple[int, ...] = (), **kwargs: Any):
        if frame_stack < 1 or horizon % frame_stack or horizon // frame_stack < 2:
            raise ValueError(f"horizon={horizon} must be a multiple (>= 2 tokens) of frame_stack={frame_stack}.")
        if kwargs.pop("value_head", False):
            raise ValueError("Diffusion Forcing has no value head; goals steer it by guidance.")
        if goal_pinning and (causal or not goal_dims):
            raise ValueError("goal_pinning needs causal=False (a causal denoiser cannot see the plan's end) and the "
                             "task's goal_dims; set causal: false or drop goal_pinning.")
        if goal_condition and not goal_dims:
            raise ValueError("goal_condition needs the task's goal_dims (a goal-reaching task); drop goal_condition.")
        # read by build_denoiser during super().__init__
        self.frame_stack, self.causal, self.goal_condition = frame_stack, causal, goal_condition
        self.condition_dim = len(goal_dims) if goal_condition else 0
        super().__init__(normalizer, horizon, denoiser_class=denoiser_class, denoiser_kwargs=denoiser_kwargs,
                         prediction_type=prediction_type, value_head=False, goal_dims=goal_dims, **kwargs)
        self.snr_clip, self.tail_weight, self.low_noise_first = snr_clip, tail_weight, low_noise_first
        self.goal_pinning = goal_pinning
        if goal_condition:
            nn.init.zeros_(self.denoiser.cond[-1].weight)
            nn.init.zeros_(self.denoiser.cond[-1].bias)
        self.inverse_dynamics = None if inverse_dynamics_kwargs is None else InverseDynamics(
            self.layout.obs_dim, self.layout.act_dim, **inverse_dynamics_kwargs)

    @property
    def tokens(self) -> int:
        return self.horizon // self.frame_stack

    def build_denoiser(self, denoiser_class: str, denoiser_kwargs: dict[str, Any]) -> nn.Module:
        kwargs = {"causal": self.causal, **denoiser_kwargs}
        if self.condition_dim:
            kwargs["cond_dim"] = self.condition_dim
        return resolve_class(denoiser_class, nn.Module)(transition_dim=self.frame_stack * self.layout.transition_dim,
                                                        horizon=self.horizon // self.frame_stack, **kwargs)

    def to_planner(self, task: Task, stride: int, **planner_kwargs: Any) -> DiffusionForcingPlanner:
        if stride != 1:
            raise ValueError(f"Diffusion Forcing tokens pack consecutive env steps: train with stride 1, got {stride}.")
        planner_kwargs.setdefault("goal_inpainting", self.goal_pinning)
        return DiffusionForcingPlanner(task=task, normalizer=self.normalizer, denoiser=self.denoiser,
                                       inverse_dynamics=self.inverse_dynamics, schedule=self.schedule.config,
                                       horizon=self.horizon, frame_stack=self.frame_stack, **planner_kwargs)

    def training_constraints(self, x0: torch.Tensor, kept: torch.Tensor | None = None) -> Inpaint:
        """The current observation (step 0) is known, as at sampling time; with ``goal_pinning`` also the goal dims
        of the last kept step (``kept``: (B,) tokens before the cut; default all)."""
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[:, 0, self.layout.channels("observations")] = True
        if self.goal_pinning:
            kept = torch.full((len(x0),), self.tokens, device=x0.device) if kept is None else kept
            last_step = torch.arange(self.horizon, device=x0.device) == kept[:, None] * self.frame_stack - 1  # (B, H)
            mask[:, :, self.layout.channels("observations", self.goal_dims)] |= last_step[..., None]
        return Inpaint(mask, x0)

    def goal_cond(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, G) the normalized goal positions of the windows' episodes, with ``goal_condition``; else None."""
        if not self.goal_condition:
            return None
        return self.normalizer.normalize("observations", batch["goal"], self.goal_dims)

    def sample_timesteps(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, N) levels, independent per token; the first token below K / 4 with probability ``low_noise_first``."""
        k = self.schedule.num_train_timesteps
        t = torch.randint(0, k, (x0.shape[0], self.tokens), device=x0.device)
        low = torch.rand(x0.shape[0], device=x0.device) < self.low_noise_first
        t[:, 0] = torch.where(low, torch.randint(0, max(k // 4, 1), (x0.shape[0],), device=x0.device), t[:, 0])
        return t

    def tail_mask(self, b: int, device: torch.device) -> torch.Tensor:
        """(B, N) bool: the tokens after a random cut (each window keeps 1..N tokens; none cut if tail_weight = 0)."""
        keep = torch.randint(1, self.tokens + 1, (b, 1), device=device)
        tail = torch.arange(self.tokens, device=device)[None] >= keep
        return tail & (self.tail_weight > 0)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = self.normalize_batch(batch)
        fs, k = self.frame_stack, self.schedule.num_train_timesteps
        tail = self.tail_mask(x0.shape[0], x0.device)
        constraints = self.training_constraints(x0, kept=(~tail).sum(1))
        t = torch.where(tail, k - 1, self.sample_timesteps(x0)).repeat_interleave(fs, 1)  # (B, H) per env step
        noise = torch.randn_like(x0)
        tail_steps = tail.repeat_interleave(fs, 1)[..., None]
        x_t = constraints.apply(torch.where(tail_steps, noise, self.schedule.add_noise(x0, noise, t)))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            prediction = token_model(self.denoiser, fs, self.goal_cond(batch))(x_t, t).float()
        free = (~constraints.mask).float()
        weight = free if self.snr_clip is None else free * min_snr_weight(self.schedule, t, x0, self.snr_clip)
        weight = weight * torch.where(tail_steps, self.tail_weight, 1.0)
        target = self.make_target(x0, noise, t)
        out = {"diffusion": ((prediction - target) ** 2 * weight).sum() / free.sum()}
        out["loss"] = out["diffusion"]
        if self.inverse_dynamics is not None:  # step 0 -> 1 is a real transition in every window
            obs, act = x0[..., self.layout.channels("observations")], x0[..., self.layout.channels("actions")]
            out["inverse_dynamics"] = ((self.inverse_dynamics(obs[:, 0], obs[:, 1]) - act[:, 0]) ** 2).mean()
            out["loss"] = out["loss"] + out["inverse_dynamics"]
        return out


class GoalGuidance(Guidance):
    """DF's goal guidance on the predicted x0, with Monte-Carlo guidance over futures (MCTG).

    The loss is ``sum_steps tanh(d(p, g) / 2)`` over the planned positions ``p`` (``goal_dims`` of the observations,
    in env units), ``d`` the straight distance (DF's) or another metric (``distance``); its gradient with respect
    to x_t is taken through the denoiser (DPS) and moves x0: ``x0 <- x0 - scale * grad`` on free entries.

    MCTG: the tokens noisier than the least noisy moving token (the frontier) are the future. ``samples - 1``
    extra futures are drawn by re-noising the predicted x0 of those tokens to their level and predicting again; the
    loss is averaged over all samples, so the present tokens' gradients are averaged over futures (the future tokens
    keep their plain gradient). ``samples = 1`` is plain guidance.

    Args:
        goal: (B, G) goals in env units.
        goal_dims: the observation dims the goal gives (positions).
        scale: guidance scale (0: no-op).
        samples: MCTG samples per step (1 = plain guidance).
        distance: ``(points (B, H, G), goals (B, 1, G)) -> (B, H)``; None: the straight distance.
        loss: ``"tanh"`` (DF's ``tanh(d / 2)``: its pull is strongest at the goal and fades with distance),
            ``"pseudo_huber"`` (``sqrt(d^2 + c^2) - c``, c = ``HUBER_WIDTH`` m: no pull at the goal and a pull of unit
            slope far from it) or ``"approach"``: pseudo-Huber for the rows in ``far`` (the agent still on its way),
            tanh for the others (the agent at the goal, where a strong pull makes the ball jitter).
        far: (B,) bool, the rows for ``"approach"``.
        hold_scale: with ``"approach"``, the tanh term of the rows not in ``far`` is multiplied by it.
        brake: weight of a speed penalty ``sum_steps |v - v_ref|^2`` (``velocity_dims``, m/s) in the rows of
            ``holding`` (B,) bool: agents at their final goal, whose plans should stay;
            ``v_ref = -brake_gain * (p - g)`` (1/s; 0: plain braking) lets the plan drift in to the goal. Quadratic, so a guidance step shrinks the
            planned velocities by a fraction instead of stepping past zero.
        clip: clamp the guided x0 to [-1, 1] (bounded normalizers), as the sampler clamps the unguided one; without
            it a guided plan can leave the data's range and its diffused actions saturate.
    """

    needs_grad = True
    HUBER_WIDTH = 0.5

    def __init__(self, goal: torch.Tensor, goal_dims: list[int], scale: float = 1.0, samples: int = 1,
                 distance: nn.Module | None = None, loss: str = "tanh", clip: bool = False,
                 far: torch.Tensor | None = None, hold_scale: float = 1.0, brake: float = 0.0,
                 velocity_dims: list[int] | None = None, holding: torch.Tensor | None = None,
                 brake_gain: float = 0.0):
        super().__init__()
        if samples < 1:
            raise ValueError(f"mctg_samples must be >= 1, got {samples}.")
        if loss not in GOAL_LOSSES:
            raise ValueError(f"goal_loss must be one of {GOAL_LOSSES}, got {loss!r}.")
        self.goal, self.goal_dims, self.scale, self.samples = goal, list(goal_dims), scale, samples
        if loss == "approach" and far is None:
            raise ValueError("goal_loss='approach' needs `far`, the rows whose agent is still on its way.")
        self.distance, self.loss_kind, self.clip, self.far, self.hold_scale = distance, loss, clip, far, hold_scale
        if brake and (not velocity_dims or holding is None):
            raise ValueError("a goal brake needs the task's velocity_dims and `holding`, the rows at their final goal.")
        self.brake, self.velocity_dims, self.holding = brake, list(velocity_dims or []), holding
        self.brake_gain = brake_gain

    def predict(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        ctx.scratch["model_fn"] = model_fn  # guide_x0 predicts again for MCTG
        return model_fn(x, t)

    def loss(self, x0: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        """Sum over batch and steps of ``tanh(d / 2)`` or the pseudo-Huber ``d`` (per-row terms are independent),
        plus the brake's speed penalty in the holding rows."""
        observations = ctx.to_env(x0)["observations"]
        positions = observations[..., self.goal_dims]
        goal = self.goal.to(x0)[:, None]
        offsets = positions - goal
        distance = offsets.norm(dim=-1) if self.distance is None else self.distance(positions, goal)
        if not self.brake:
            return self.pull(distance)
        return self.pull(distance) + self.braking(observations[..., self.velocity_dims], offsets)

    def pull(self, distance: torch.Tensor) -> torch.Tensor:
        """The goal loss of planned distances (B, H), summed."""
        if self.loss_kind == "tanh":
            return torch.tanh(distance / 2).sum()
        huber = (distance ** 2 + self.HUBER_WIDTH ** 2).sqrt() - self.HUBER_WIDTH
        if self.loss_kind == "pseudo_huber":
            return huber.sum()
        near = self.hold_scale * torch.tanh(distance / 2)
        return torch.where(self.far.to(distance.device)[:, None], huber, near).sum()

    def braking(self, velocities: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """``brake * sum |v - v_ref|^2`` over the holding rows' planned velocities (B, H, V), ``offsets``
        (B, H, G) the planned positions minus the goal."""
        excess = ((velocities + self.brake_gain * offsets) ** 2).sum(-1)
        return self.brake * (excess * self.holding.to(excess)[:, None]).sum()

    def future(self, ctx: GuidanceContext) -> torch.Tensor | None:
        """(B, H) bool: entries noisier than the least noisy moving token (moving or held), or None if none."""
        if ctx.t.dim() != 2:
            return None
        moves = ctx.t != ctx.t_prev
        frontier = torch.where(moves, ctx.t, torch.full_like(ctx.t, torch.iinfo(ctx.t.dtype).max)).amin(1, True)
        future = ctx.t > frontier
        return future if bool(future.any()) else None

    def guide_x0(self, x0: torch.Tensor, x_t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        if self.scale == 0:
            return x0
        future = self.future(ctx) if self.samples > 1 else None
        if future is None:
            (grad,) = torch.autograd.grad(self.loss(x0, ctx), x_t)
        else:
            grad = self._mctg_gradient(x0, x_t, ctx, future)
        if ctx.free is not None:
            grad = grad * ctx.free
        guided = x0.detach() - self.scale * grad
        return guided.clamp(-1.0, 1.0) if self.clip else guided

    def _mctg_gradient(self, x0: torch.Tensor, x_t: torch.Tensor, ctx: GuidanceContext,
                       future: torch.Tensor) -> torch.Tensor:
        model_fn: ModelFn = ctx.scratch["model_fn"]
        (g_plain,) = torch.autograd.grad(self.loss(x0, ctx), x_t)
        extra = x0.new_zeros(())
        for _ in range(self.samples - 1):
            noise = randn(x0.shape, ctx.generator, x0.device, x0.dtype)
            x_j = torch.where(future[..., None], ctx.schedule.add_noise(x0.detach(), noise, ctx.t), x_t)
            extra = extra + self.loss(ctx.schedule.to_x0(model_fn(x_j, ctx.t), x_j, ctx.t), ctx)
        (g_extra,) = torch.autograd.grad(extra, x_t)
        return torch.where(future[..., None], g_plain, (g_plain + g_extra) / self.samples)


class DiffusionForcingPlanner(Planner):
    """Plan ``horizon`` env steps (``horizon / frame_stack`` tokens) from the current observation; ``rollout``
    extends a plan past the horizon with a sliding window of clean context.

    Args:
        normalizer, denoiser: trained components.
        schedule: the training noise schedule (``NoiseSchedule.config``).
        horizon, frame_stack: env steps per plan, env steps per token.
        num_inference_steps: sampling levels S (DDIM timesteps).
        scheduling: ``"pyramid"`` (with ``uncertainty``), ``"full_sequence"`` or ``"autoregressive"``.
        eta: 0 = DDIM, 1 = DDPM-like ancestral noise.
        temperature: the initial noise is drawn with this standard deviation (1: the model's distribution; below 1,
            with ``eta=0``, samples nearer its mode, e.g. diffused actions with less of the data's action noise).
        guidance_scale: goal guidance scale (0 = off; used only when a goal is given).
        goal_metric: the distance the goal guidance shortens: ``"straight"`` (DF's) or ``"corridors"`` (through the
            free cells of the task's maze map, ``diffplan.maze.CorridorDistance``: the pull then leads round walls
            instead of into them).
        mctg_samples: Monte-Carlo guidance samples of the future per step (1 = plain guidance).
        goal_loss: ``"tanh"`` (DF's), ``"pseudo_huber"`` (no pull at the goal, unit slope far away) or
            ``"approach"`` (pseudo-Huber while the agent is farther than ``approach_radius`` from the goal in
            ``goal_metric``, DF's tanh within it), see :class:`GoalGuidance`.
        approach_radius: metres, for ``goal_loss="approach"``.
        hold_scale: for ``goal_loss="approach"``, multiplies the pull (tanh) of the rows within ``approach_radius``.
        hold_brake: weight of a penalty on planned speeds (m/s, the task's ``velocity_dims``) while the agent is within
            ``brake_radius`` of its final goal (not of a waypoint), so that plans from the goal stay there (0: off).
        brake_radius: metres (None: ``approach_radius``).
        brake_gain: 1/s; the brake penalizes the speed in excess of ``-brake_gain * (p - g)``, a drift in to the goal.
        clip_guided: clamp the guided x0 to the data's range, as the unguided one is (bounded normalizers only).
        goal_inpainting: also pin the goal position at the plan's last ``goal_steps`` steps.
        inpaint_radius: metres; with ``goal_inpainting``, pin only in the rows whose agent is within it of its goal
            (in ``goal_metric``), so that a plan from the goal ends there while plans on the way, e.g. to a waypoint,
            are not made to stop (None: pin in every row).
        goal_steps: how many last steps ``goal_inpainting`` pins at the goal (1: the last step; ``frame_stack``: the
            whole last token, the ball resting at its goal, which a DF trained with independent token levels has
            seen as a clean token).
        rollout_context: clean context tokens carried from one window to the next in ``rollout``.
        act_context: ``act`` plans after one clean context token of the last ``frame_stack`` executed steps
            (observations and the actions taken), as DF conditions on its past instead of on the current
            observation alone; before an episode's first step the agent is taken to be at rest at its first
            observation (zero velocity, zero action). The plan then holds ``horizon - frame_stack`` steps.
        replan_every: env steps between plans in ``act`` (default: one token, ``frame_stack``).
        action_source: ``"diffused"`` (default) executes the planned actions of the steps reached;
            ``"inverse_dynamics"`` acts by ``f(observed s_t, planned s_{t+1})`` (needs the ``inverse_dynamics``
            head); ``"tracker"`` as for every planner.
    """

    components = ("normalizer", "denoiser", "inverse_dynamics")

    def __init__(self, task: Task, normalizer: Normalizer, denoiser: nn.Module, schedule: dict[str, Any],
                 horizon: int, inverse_dynamics: nn.Module | None = None, frame_stack: int = 10,
                 num_inference_steps: int = 10, scheduling: str = "pyramid", uncertainty: float = 1.0, eta: float = 0.0,
                 temperature: float = 1.0,
                 guidance_scale: float = 1.0, mctg_samples: int = 1, goal_metric: str = "straight",
                 goal_loss: str = "tanh", approach_radius: float = 0.5, hold_scale: float = 1.0,
                 hold_brake: float = 0.0, brake_radius: float | None = None, brake_gain: float = 0.0,
                 clip_guided: bool = False,
                 goal_inpainting: bool = False, inpaint_radius: float | None = None,
                 goal_steps: int = 1, rollout_context: int = 1, act_context: bool = True,
                 **planner_kwargs: Any):
        planner_kwargs.setdefault("replan_every", frame_stack)
        super().__init__(task, **planner_kwargs)
        self.save_config(locals())
        self.act_context = act_context
        self.history_length, self.history_actions = (frame_stack, True) if act_context else (0, False)
        if scheduling not in SCHEDULING:
            raise ValueError(f"scheduling must be one of {SCHEDULING}, got {scheduling!r}.")
        if horizon % frame_stack:
            raise ValueError(f"horizon={horizon} must be a multiple of frame_stack={frame_stack}.")
        self.normalizer, self.denoiser, self.inverse_dynamics = normalizer, denoiser, inverse_dynamics
        self.action_source = self.action_source  # checked again, now that the components are set
        self.schedule = NoiseSchedule.from_config(schedule)
        dims = normalizer.config["dims"]
        self.layout = TrajectoryLayout(obs_dim=dims["observations"], act_dim=dims["actions"])
        self.horizon, self.frame_stack, self.tokens = horizon, frame_stack, horizon // frame_stack
        if not 1 <= rollout_context < self.tokens:
            raise ValueError(f"rollout_context={rollout_context} must be in [1, {self.tokens - 1}].")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        self.num_inference_steps, self.scheduling, self.uncertainty, self.eta, self.temperature = (
            num_inference_steps, scheduling, uncertainty, eta, temperature)
        self.guidance_scale, self.mctg_samples, self.goal_inpainting = guidance_scale, mctg_samples, goal_inpainting
        if not 1 <= goal_steps <= horizon - frame_stack:
            raise ValueError(f"goal_steps={goal_steps} must be in [1, {horizon - frame_stack}].")
        if inpaint_radius is not None and not inpaint_radius > 0:
            raise ValueError(f"inpaint_radius must be > 0 metres or null (pin in every row), got {inpaint_radius!r}.")
        self.goal_steps, self.inpaint_radius = goal_steps, inpaint_radius
        if goal_metric not in ("straight", "corridors"):
            raise ValueError(f"goal_metric must be 'straight' or 'corridors', got {goal_metric!r}.")
        if goal_metric == "corridors" and task.maze_map is None:
            raise ValueError(f"goal_metric='corridors' needs a maze task; {task.name!r} has no maze map.")
        self.goal_metric = goal_metric
        if goal_loss not in GOAL_LOSSES:
            raise ValueError(f"goal_loss must be one of {GOAL_LOSSES}, got {goal_loss!r}.")
        if not hold_scale >= 0:
            raise ValueError(f"hold_scale must be >= 0, got {hold_scale!r}.")
        self.goal_loss, self.approach_radius, self.hold_scale = goal_loss, approach_radius, hold_scale
        if not hold_brake >= 0:
            raise ValueError(f"hold_brake must be >= 0, got {hold_brake!r}.")
        if hold_brake and not task.velocity_dims:
            raise ValueError(f"hold_brake needs the task's velocity_dims; {task.name!r} names none in its card.")
        if brake_radius is not None and not brake_radius > 0:
            raise ValueError(f"brake_radius must be > 0 metres or null (approach_radius), got {brake_radius!r}.")
        if not brake_gain >= 0:
            raise ValueError(f"brake_gain must be >= 0 (1/s), got {brake_gain!r}.")
        self.hold_brake, self.brake_radius, self.brake_gain = hold_brake, brake_radius, brake_gain
        self.clip_guided = clip_guided and normalizer.is_bounded("observations", "actions")
        # a submodule: it follows the planner's device
        self._corridors = CorridorDistance(task.maze_map) if goal_metric == "corridors" else None
        self.rollout_context = rollout_context
        self.model_fn = token_model(denoiser, frame_stack)
        self.goal_conditioned = bool(getattr(denoiser, "config", {}).get("cond_dim"))
        self._matrices: dict[tuple, torch.Tensor] = {}
        for tokens in (self.tokens, self.tokens - rollout_context):
            self._matrix(tokens)
        self.eval()

    @property
    def obs_dim(self) -> int:
        return self.layout.obs_dim

    @Planner.action_source.setter
    def action_source(self, name: str) -> None:
        if name != "inverse_dynamics":
            Planner.action_source.fset(self, name)
            return
        model = getattr(self, "inverse_dynamics", ...)  # ...: not set yet (Planner.__init__); checked again later
        if model is None:
            raise ValueError("action_source='inverse_dynamics' needs a planner trained with inverse_dynamics_kwargs.")
        self._action_source_name = name

    def action_from_plan(self, plan: Plan, obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if self.action_source == "inverse_dynamics":
            return InverseDynamicsActions(self.inverse_dynamics, self.normalizer)(plan, obs, k)
        return super().action_from_plan(plan, obs, k)

    def goal_guidance(self, goal: torch.Tensor | None, obs: torch.Tensor | None = None,
                      final_goal: torch.Tensor | None = None) -> Guidance | None:
        """The planner's own guidance: DF's goal guidance (with MCTG), when a goal is given and the scale is > 0;
        ``obs`` (B, O) the current observations, which ``goal_loss="approach"`` and ``hold_brake`` need;
        ``final_goal`` (B, G) the task's goals when ``goal`` holds waypoints (None: ``goal`` is final)."""
        if goal is None or not self.guidance_scale:
            return None
        if obs is None and (self.goal_loss == "approach" or self.hold_brake):
            raise ValueError("goal_loss='approach' and hold_brake need the current observations.")
        far = ~self.near_goal(obs, goal, self.approach_radius) if self.goal_loss == "approach" else None
        holding = None
        if self.hold_brake:
            at_final = torch.ones_like(goal[:, 0], dtype=torch.bool) if final_goal is None else (
                (goal == final_goal.to(goal)).all(1))
            radius = self.approach_radius if self.brake_radius is None else self.brake_radius
            holding = self.near_goal(obs, goal, radius) & at_final
        return GoalGuidance(goal, list(self.task.goal_dims), self.guidance_scale, self.mctg_samples, self._corridors,
                            loss=self.goal_loss, clip=self.clip_guided, far=far, hold_scale=self.hold_scale,
                            brake=self.hold_brake, velocity_dims=list(self.task.velocity_dims), holding=holding,
                            brake_gain=self.brake_gain)

    def near_goal(self, obs: torch.Tensor, goal: torch.Tensor, radius: float) -> torch.Tensor:
        """(B,) bool: the agents of ``obs`` (B, O) within ``radius`` metres of ``goal`` (B, G), in ``goal_metric``."""
        here, target = obs[:, list(self.task.goal_dims)], goal.to(obs)
        distance = (here - target).norm(dim=-1) if self._corridors is None else self._corridors(here, target)
        return distance <= radius

    def _matrix(self, tokens: int) -> torch.Tensor:
        """The (M, tokens) scheduling matrix, kept per setting (built on the CPU, once)."""
        key = (self.scheduling, self.num_inference_steps, tokens, self.uncertainty)
        if key not in self._matrices:
            self._matrices[key] = scheduling_matrix(self.scheduling, self.schedule, self.num_inference_steps, tokens,
                                                    self.uncertainty)
        return self._matrices[key]

    def timesteps(self, b: int, context_tokens: int = 0) -> torch.Tensor:
        """(M, B, H) per-step levels: the scheduling matrix over the new tokens, -1 on ``context_tokens`` tokens."""
        matrix = self._matrix(self.tokens - context_tokens).to(self.device)
        clean = torch.full((matrix.shape[0], context_tokens), -1, dtype=matrix.dtype, device=self.device)
        levels = torch.cat([clean, matrix], dim=1).repeat_interleave(self.frame_stack, 1)
        return levels[:, None].expand(-1, b, -1)

    def constraints(self, obs: torch.Tensor, like: torch.Tensor, goal: torch.Tensor | None = None,
                    context: torch.Tensor | None = None, pin_obs: bool = False) -> Inpaint:
        """The current observation at step 0, or whole clean ``context`` steps (B, K, C) normalized (and, with
        ``pin_obs``, ``obs`` at the step after them); the goal position at the last ``goal_steps`` steps with
        ``goal_inpainting`` (in the rows within ``inpaint_radius`` of their goal, if set)."""
        c = Inpaint.empty(like)
        k = 0 if context is None else context.shape[1]
        if context is not None:
            c.mask[:, :k] = True
            c.values[:, :k] = context
        if context is None or pin_obs:
            c.pin(k, self.layout.channels("observations"), self.normalizer.normalize("observations", obs))
        if goal is not None and self.goal_inpainting:
            dims = list(self.task.goal_dims)
            channels = self.layout.channels("observations", dims)
            goal_values = self.normalizer.normalize("observations", goal, dims)
            rows = None if self.inpaint_radius is None else self.near_goal(obs, goal, self.inpaint_radius)
            for step in range(-self.goal_steps, 0):
                c.pin(step, channels, goal_values, rows)
        return c

    def goal_model(self, goal: torch.Tensor | None) -> ModelFn:
        """The model function of a plan toward ``goal`` (B, G): conditioned on it if the denoiser takes goals."""
        if not self.goal_conditioned:
            return self.model_fn
        if goal is None:
            raise ValueError("this Diffusion Forcing planner was trained goal-conditioned (goal_condition=true): "
                             "pass a goal to plan/act/rollout.")
        cond = self.normalizer.normalize("observations", goal.to(self.device), list(self.task.goal_dims))
        return token_model(self.denoiser, self.frame_stack, cond)

    def sample_window(self, obs: torch.Tensor, goal: torch.Tensor | None = None, context: torch.Tensor | None = None,
                      guidance: Guidance | None = None, generator: torch.Generator | None = None,
                      pin_obs: bool = False, final_goal: torch.Tensor | None = None) -> torch.Tensor:
        """One window (B, horizon, C), normalized, from ``obs`` (B, O) or from clean ``context`` steps (B, K, C)
        (K a multiple of ``frame_stack``; the causal model does not see what follows them), with ``obs`` pinned
        right after them if ``pin_obs``; ``final_goal`` as in ``goal_guidance``."""
        b = obs.shape[0]
        noise = self.temperature * randn((b, self.horizon, self.layout.transition_dim), generator, self.device)
        k = 0 if context is None else context.shape[1] // self.frame_stack
        guidance = steer(self.goal_guidance(goal, obs, final_goal), guidance)
        return denoise(self.goal_model(goal), self.schedule, noise, self.timesteps(b, k),
                       constraints=self.constraints(obs, noise, goal, context, pin_obs), guidance=guidance, eta=self.eta,
                       clip_denoised=self.normalizer.is_bounded("observations", "actions"), generator=generator,
                       context={"normalizer": self.normalizer, "layout": self.layout, "goal": goal})

    def to_plan(self, x: torch.Tensor) -> Plan:
        fields = self.layout.unpack(x)
        return Plan(observations=self.normalizer.unnormalize("observations", fields["observations"]),
                    actions=self.normalizer.unnormalize("actions", fields["actions"]), stride=1, normalized=x)

    def executed_steps(self, context: PlanContext) -> torch.Tensor | None:
        """(B, frame_stack, C) normalized: the executed observations and actions before the current step, the
        steps before the episode's first one at rest at its first observation; None without ``act_context``."""
        if not self.act_context or context.history is None:
            return None
        mask = context.history_mask
        actions = context.history_actions
        if actions is None:
            if bool(mask.any()):
                raise ValueError("Diffusion Forcing plans after the executed observations and actions, which act() "
                                 "records; call plan() without `history`.")
            actions = context.obs.new_zeros(*mask.shape, self.layout.act_dim)
        first = mask.float().argmax(1)  # the oldest observed step (mask: the newest steps observed)
        anchor = torch.where(mask.any(1, keepdim=True), context.history[torch.arange(len(first), device=first.device), first], context.obs)
        anchor = anchor.clone()
        anchor[:, list(self.task.velocity_dims)] = 0.0
        obs = torch.where(mask[..., None], context.history, anchor[:, None])
        actions = torch.where(mask[..., None], actions, torch.zeros_like(actions))
        return self.layout.pack({"actions": self.normalizer.normalize("actions", actions),
                                 "observations": self.normalizer.normalize("observations", obs)})

    @torch.no_grad()
    def sample(self, context: PlanContext, n: int = 1, guidance: Guidance | None = None,
               generator: torch.Generator | None = None) -> Plan:
        """``n`` plans per row (see ``Planner.sample``) from the current step: ``horizon`` env steps, or
        ``horizon - frame_stack`` after the executed steps of ``act`` (``act_context``); a goal steers by guidance."""
        context = context.to(self.device)
        obs = context.obs.repeat_interleave(n, 0)
        goal = context.goal.repeat_interleave(n, 0) if context.goal is not None else None
        final = context.final_goal.repeat_interleave(n, 0) if context.final_goal is not None else None
        past = self.executed_steps(context)
        if past is None:
            return self.to_plan(self.sample_window(obs, goal, guidance=guidance, generator=generator, final_goal=final))
        window = self.sample_window(obs, goal, context=past.repeat_interleave(n, 0), guidance=guidance,
                                    generator=generator, pin_obs=True, final_goal=final)
        return self.to_plan(window[:, self.frame_stack:])

    @torch.no_grad()
    def rollout(self, obs: Any, steps: int, goal: Any = None, generator: torch.Generator | None = None,
                guidance: Guidance | dict | None = None) -> Plan:
        """A plan of ``steps`` env steps, past the horizon: each next window starts from the last
        ``rollout_context`` tokens of the one before as clean context (t = -1) and adds the tokens after them.

        Returns:
            Plan with observations (B, steps, O) and actions (B, steps, A), stride 1.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        x, g, _ = self.parse_observation(obs, goal)
        x, g = x.to(self.device), None if g is None else g.to(self.device)
        guidance = self._steering(guidance)
        window = self.sample_window(x, g, guidance=guidance, generator=generator)
        parts, total = [window], self.horizon
        keep = self.rollout_context * self.frame_stack
        while total < steps:
            window = self.sample_window(x, g, context=window[:, self.horizon - keep:], guidance=guidance,
                                        generator=generator)
            parts.append(window[:, keep:])
            total += self.horizon - keep
        plan = self.to_plan(torch.cat(parts, dim=1)[:, :steps])
        return self._checked(plan, PlanContext(obs=x, goal=g))
