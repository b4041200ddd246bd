"""Diffusion Forcing: per-token training noise, scheduling matrices through the one sampler, clean context,
causality, goal guidance and MCTG, rollouts past the horizon, and the control loop. (DF also runs the shared planner
tests of test_planner.py and test_sampling_core.py through the ``any_planner`` fixture.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from diffplan.algorithms.diffusion_forcing import (
    DiffusionForcing,
    DiffusionForcingPlanner,
    GoalGuidance,
    min_snr_weight,
    pack_tokens,
    unpack_tokens,
)
from diffplan.diffusion.sampler import denoise, randn
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance.base import Guidance
from diffplan.maze import CorridorDistance
from diffplan.nn.transformer import TransformerDenoiser

GOAL = np.array([-1.0, 1.0])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def first_batch(dm, n: int = 8) -> dict[str, torch.Tensor]:
    return default_collate([dm.windows[i] for i in range(n)])


class IdentityTokens(nn.Module):
    """A toy x0 model: x0 = x_t (so DPS gradients through it are the plain gradients)."""

    def forward(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return tokens


class ConstantVelocity(nn.Module):
    """A causal toy x0 model: each token continues in a straight line (``velocity`` per env step) from the last
    step of the token before it (token 0 from its own first step, the current observation)."""

    def __init__(self, frame_stack: int, velocity: torch.Tensor):
        super().__init__()
        self.frame_stack, self.velocity = frame_stack, velocity

    def forward(self, tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = unpack_tokens(tokens, self.frame_stack)
        i = torch.arange(x.shape[1])
        anchor = ((i // self.frame_stack) * self.frame_stack - 1).clamp(min=0)
        return pack_tokens(x[:, anchor] + (i - anchor)[None, :, None] * self.velocity, self.frame_stack)


def toy_planner(tiny_diffusion_forcing, denoiser: nn.Module, **kwargs) -> DiffusionForcingPlanner:
    module, dm = tiny_diffusion_forcing
    return DiffusionForcingPlanner(dm.task, module.normalizer, denoiser, module.schedule.config, module.horizon,
                                   frame_stack=module.frame_stack, num_inference_steps=4, **kwargs)


def goal_distance(plan, goal=GOAL) -> torch.Tensor:
    return (plan.observations[..., :2] - torch.tensor(goal, dtype=torch.float32)).norm(dim=-1)


# -- tokens and training ----------------------------------------------------------------------------------------
def test_tokens_pack_frame_stack_steps_of_actions_and_observations():
    x = torch.arange(2 * 6 * 5, dtype=torch.float32).reshape(2, 6, 5)
    tokens = pack_tokens(x, 3)
    assert tokens.shape == (2, 2, 15)
    torch.testing.assert_close(tokens[:, 1, 5:10], x[:, 4])  # token 1, its second step
    assert torch.equal(unpack_tokens(tokens, 3), x)


def test_model_and_windows_have_the_token_shapes(tiny_diffusion_forcing):
    module, dm = tiny_diffusion_forcing
    assert module.tokens == 4 and module.frame_stack == 3 and dm.horizon == 12 and dm.stride == 1
    assert module.denoiser.config["transition_dim"] == 3 * 6 and module.denoiser.config["horizon"] == 4
    assert module.denoiser.config["causal"] is True
    with pytest.raises(ValueError, match="multiple"):
        DiffusionForcing(module.normalizer, 10, frame_stack=3)
    with pytest.raises(ValueError, match="stride 1"):
        module.to_planner(dm.task, 2)


def test_training_noise_differs_per_token(tiny_diffusion_forcing, monkeypatch):
    module, dm = tiny_diffusion_forcing
    seen = []
    forward = module.denoiser.forward
    monkeypatch.setattr(module.denoiser, "forward", lambda x, t, c=None: seen.append((x, t)) or forward(x, t, c))
    torch.manual_seed(0)
    module.losses(first_batch(dm, 16))
    tokens, t = seen[0]
    assert tokens.shape == (16, 4, 18) and t.shape == (16, 4)
    assert (t != t[:, :1]).any(1).all()  # every window has tokens at different levels
    assert len(t.unique()) > 8
    monkeypatch.setattr(module, "low_noise_first", 1.0)
    module.losses(first_batch(dm, 16))
    assert (seen[1][1][:, 0] < module.schedule.num_train_timesteps // 4).all()


def test_tokens_after_the_cut_are_pure_noise_at_the_top_level(tiny_diffusion_forcing, monkeypatch):
    module, dm = tiny_diffusion_forcing
    seen = []
    forward = module.denoiser.forward
    monkeypatch.setattr(module.denoiser, "forward", lambda x, t, c=None: seen.append((x, t)) or forward(x, t, c))
    tail = torch.tensor([False, False, True, True])
    monkeypatch.setattr(module, "tail_mask", lambda b, device: tail.expand(b, -1))
    batch = first_batch(dm)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["observations"][:, 3:] += 0.3  # env steps 3.. are tokens 1, 2 and 3
    for b in (batch, changed):
        torch.manual_seed(0)
        module.losses(b)
    (x_a, t_a), (x_b, t_b) = seen
    assert torch.equal(t_a, t_b)
    assert (t_a[:, 2:] == module.schedule.num_train_timesteps - 1).all()
    assert torch.equal(x_a[:, 2:], x_b[:, 2:])  # the tail's input does not depend on the data: pure noise
    assert not torch.equal(x_a[:, 1], x_b[:, 1])  # token 1 (before the cut) does


def test_goal_pinning_keeps_the_last_kept_steps_position_clean(tiny_diffusion_forcing, monkeypatch):
    module, dm = tiny_diffusion_forcing
    torch.manual_seed(0)
    pinned = DiffusionForcing(module.normalizer, module.horizon, frame_stack=3, num_train_timesteps=20, causal=False,
                              goal_pinning=True, goal_dims=(0, 1),
                              denoiser_kwargs={"d_model": 16, "depth": 2, "heads": 2, "emb_dim": 16})
    seen = []
    forward = pinned.denoiser.forward
    monkeypatch.setattr(pinned.denoiser, "forward", lambda x, t, c=None: seen.append(x) or forward(x, t, c))
    monkeypatch.setattr(pinned, "tail_mask", lambda b, device: torch.tensor([False, False, True, True]).expand(b, -1))
    batch = first_batch(dm)
    pinned.losses(batch)
    x_t = unpack_tokens(seen[0], 3)
    x0 = pinned.normalize_batch(batch)
    goal = pinned.layout.channels("observations", [0, 1])
    assert torch.equal(x_t[:, 5, goal], x0[:, 5, goal])  # step 5: the last of the 2 kept tokens
    assert not torch.equal(x_t[:, 4, goal], x0[:, 4, goal]) and not torch.equal(x_t[:, 11, goal], x0[:, 11, goal])
    assert pinned.to_planner(dm.task, 1).goal_inpainting is True  # sampling pins the goal where training did
    assert module.to_planner(dm.task, 1).goal_inpainting is False
    with pytest.raises(ValueError, match="causal=False"):
        DiffusionForcing(module.normalizer, module.horizon, frame_stack=3, goal_pinning=True, goal_dims=(0, 1))


@pytest.mark.parametrize("prediction_type", ["sample", "epsilon"])
def test_min_snr_weight_caps_the_x0_error_weight_at_five(prediction_type):
    s = NoiseSchedule(20, prediction_type=prediction_type)
    t = torch.tensor([[0, 5, 10, 19]])
    a = s.alphas_cumprod[t + 1]
    snr = a / (1 - a)
    w = min_snr_weight(s, t, torch.zeros(1, 4, 1))[..., 0]
    x0_weight = w if prediction_type == "sample" else w * snr  # an epsilon error is an x0 error times sqrt(SNR)
    torch.testing.assert_close(x0_weight, snr.clamp(max=5.0))


def test_without_snr_clip_the_noisiest_level_keeps_its_loss_weight(tiny_diffusion_forcing, monkeypatch):
    module, dm = tiny_diffusion_forcing
    top = torch.full((8, module.tokens), module.schedule.num_train_timesteps - 1)
    monkeypatch.setattr(module, "sample_timesteps", lambda x0: top)
    monkeypatch.setattr(module, "tail_weight", 0.0)
    losses = {}
    for clip in (5.0, None):
        monkeypatch.setattr(module, "snr_clip", clip)
        torch.manual_seed(0)
        losses[clip] = module.losses(first_batch(dm))["diffusion"].item()
    assert losses[5.0] < 1e-2 * losses[None]  # min(SNR, 5) ~ 0 at the top level; the plain MSE is not


def test_a_few_training_steps_lower_the_loss(tiny_diffusion_forcing, loss_drop):
    module, dm = tiny_diffusion_forcing
    copy = DiffusionForcing(module.normalizer, 12, frame_stack=3, num_train_timesteps=20,
                            denoiser_kwargs={"d_model": 16, "depth": 1, "heads": 2, "emb_dim": 16})
    assert loss_drop(copy, first_batch(dm, 16), steps=30, lr=3e-3) < 0.9


# -- sampling -----------------------------------------------------------------------------------------------------
def test_full_sequence_scheduling_equals_the_scalar_timestep_sampler(diffusion_forcing_planner, obs_batch):
    planner = diffusion_forcing_planner
    planner.scheduling = "full_sequence"
    obs = torch.as_tensor(obs_batch, dtype=torch.float32)
    by_matrix = planner.sample_window(obs, generator=gen(5))
    noise = randn(by_matrix.shape, gen(5), "cpu")
    scalar = denoise(planner.model_fn, planner.schedule, noise, planner.schedule.sampling_timesteps(4),
                     constraints=planner.constraints(obs, noise), clip_denoised=True)
    torch.testing.assert_close(by_matrix, scalar, rtol=0, atol=0)


def test_pyramid_and_autoregressive_schedules_give_finite_plans_from_the_observation(diffusion_forcing_planner,
                                                                                    obs_batch):
    planner = diffusion_forcing_planner
    plans = {}
    for kind in ("pyramid", "autoregressive", "full_sequence"):
        planner.scheduling = kind
        plans[kind] = planner.plan(obs_batch, generator=gen(1))
        assert plans[kind].observations.shape == (3, 12, 4) and torch.isfinite(plans[kind].observations).all()
        torch.testing.assert_close(plans[kind].observations[:, 0], torch.as_tensor(obs_batch, dtype=torch.float32))
    assert not torch.equal(plans["pyramid"].observations, plans["full_sequence"].observations)
    planner.scheduling = "pyramid"
    assert len(planner.timesteps(3)) == 4 + 3 + 1  # S + (N - 1) u rows, then the clean one


def test_clean_context_tokens_stay_bit_unchanged(diffusion_forcing_planner, obs_batch):
    planner = diffusion_forcing_planner
    obs = torch.as_tensor(obs_batch, dtype=torch.float32)
    context = torch.rand(3, 6, 6, generator=gen(2)) * 2 - 1  # two clean tokens
    out = planner.sample_window(obs, context=context, generator=gen(3))
    assert torch.equal(out[:, :6], context) and not torch.equal(out[:, 6:9], out[:, 3:6])
    # without inpainting, the schedule alone holds them: their level is -1 in every row
    start = torch.cat([context, torch.randn(3, 6, 6, generator=gen(4))], dim=1)
    timesteps = planner.timesteps(3, context_tokens=2)
    assert (timesteps[:, :, :6] == -1).all() and (timesteps[0, :, 6:] >= 0).all()
    _, trajectory = denoise(planner.model_fn, planner.schedule, start, timesteps, eta=1.0, generator=gen(5),
                            return_trajectory=True)
    assert all(torch.equal(x[:, :6], context) for x in trajectory.samples)


def test_past_tokens_of_the_causal_model_ignore_future_tokens(tiny_diffusion_forcing):
    module, _ = tiny_diffusion_forcing
    torch.manual_seed(0)
    for causal in (True, False):
        net = TransformerDenoiser(18, 4, d_model=16, depth=2, heads=2, emb_dim=16, causal=causal)
        net.load_state_dict(module.denoiser.state_dict())
        for block in net.blocks:  # adaLN-Zero starts as the identity; give the blocks something to mix
            nn.init.normal_(block.ada[1].weight, std=0.3)
        x, t = torch.randn(2, 4, 18), torch.randint(0, 20, (2, 4))
        x2, t2 = x.clone(), t.clone()
        x2[:, 2:], t2[:, 2:] = torch.randn(2, 2, 18), torch.randint(0, 20, (2, 2))
        with torch.no_grad():
            a, b = net(x, t), net(x2, t2)
        if causal:
            torch.testing.assert_close(a[:, :2], b[:, :2], rtol=0, atol=0)
        else:
            assert not torch.allclose(a[:, :2], b[:, :2])


# -- goals: guidance and MCTG --------------------------------------------------------------------------------------
class PlainGoalGuidance(Guidance):
    """A hand-written DPS goal guidance: x0 - scale * d/dx_t sum tanh(|p - g| / 2), on free entries."""

    needs_grad = True

    def __init__(self, goal: torch.Tensor, scale: float):
        super().__init__()
        self.goal, self.scale = goal, scale

    def guide_x0(self, x0, x_t, ctx):
        p = ctx.to_env(x0)["observations"][..., :2]
        (grad,) = torch.autograd.grad(torch.tanh((p - self.goal[:, None]).norm(dim=-1) / 2).sum(), x_t)
        return x0.detach() - self.scale * grad * ctx.free


def test_mctg_with_one_sample_equals_plain_guidance(diffusion_forcing_planner, obs_batch):
    planner = diffusion_forcing_planner
    goal = torch.tensor(GOAL, dtype=torch.float32).expand(3, 2)
    planner.guidance_scale, planner.mctg_samples = 2.0, 1
    mctg_one = planner.plan(obs_batch, goal=GOAL, generator=gen(6))
    planner.guidance_scale = 0.0
    plain = planner.plan(obs_batch, goal=GOAL, guidance=PlainGoalGuidance(goal, 2.0), generator=gen(6))
    assert torch.equal(mctg_one.observations, plain.observations) and torch.equal(mctg_one.actions, plain.actions)
    # more samples average over re-noised futures under a pyramid, deterministically under the generator
    planner.guidance_scale, planner.mctg_samples = 2.0, 3
    mctg = [planner.plan(obs_batch, goal=GOAL, generator=gen(6)) for _ in range(2)]
    assert torch.equal(mctg[0].observations, mctg[1].observations)
    assert not torch.allclose(mctg[0].observations, plain.observations)
    # full-sequence sampling has no noisier future tokens: MCTG is plain guidance there
    planner.scheduling = "full_sequence"
    planner.mctg_samples = 3
    full_mctg = planner.plan(obs_batch, goal=GOAL, generator=gen(6))
    planner.mctg_samples = 1
    torch.testing.assert_close(full_mctg.observations, planner.plan(obs_batch, goal=GOAL, generator=gen(6)).observations,
                               rtol=0, atol=0)


def test_mctg_future_is_the_tokens_noisier_than_the_frontier():
    from diffplan.guidance.base import GuidanceContext

    s = NoiseSchedule(20)
    t = torch.tensor([[-1, -1, 3, 3, 7, 7, 7, 7]])
    t_prev = torch.tensor([[-1, -1, 2, 2, 7, 7, 7, 7]])
    ctx = GuidanceContext(schedule=s, t=t, t_prev=t_prev, eta=0.0, step_index=0, num_steps=1)
    future = GoalGuidance(torch.zeros(1, 2), [0, 1], samples=2).future(ctx)
    assert future.tolist() == [[False] * 4 + [True] * 4]


def test_guidance_scale_zero_is_a_no_op(diffusion_forcing_planner, obs_batch):
    planner = diffusion_forcing_planner
    planner.guidance_scale = 0.0
    assert planner.goal_guidance(torch.zeros(3, 2)) is None
    with_goal = planner.plan(obs_batch, goal=GOAL, generator=gen(7))
    without = planner.plan(obs_batch, generator=gen(7))
    assert torch.equal(with_goal.observations, without.observations)
    guidance = GoalGuidance(torch.zeros(3, 2), [0, 1], scale=0.0, samples=3)
    assert torch.equal(planner.plan(obs_batch, guidance=guidance, generator=gen(7)).observations, without.observations)


@pytest.mark.parametrize("mctg_samples, goal_metric, goal_loss", [
    (1, "straight", "tanh"), (3, "straight", "tanh"), (1, "corridors", "tanh"), (1, "corridors", "pseudo_huber"),
    (1, "corridors", "approach")])
def test_guidance_lowers_the_distance_to_the_goal(tiny_diffusion_forcing, obs_batch, mctg_samples, goal_metric,
                                                  goal_loss):
    planner = toy_planner(tiny_diffusion_forcing, IdentityTokens(), mctg_samples=mctg_samples,
                          goal_metric=goal_metric, goal_loss=goal_loss)
    corridors = CorridorDistance(planner.task.maze_map)
    goal = torch.tensor(GOAL, dtype=torch.float32)

    def distance(plan):  # the metric the guidance shortens
        xy = plan.observations[..., :2]
        return goal_distance(plan) if goal_metric == "straight" else corridors(xy, goal)

    distances = {}
    for scale in (0.0, 1.0):
        planner.guidance_scale = scale
        distances[scale] = torch.stack([distance(planner.plan(obs_batch, goal=GOAL, generator=gen(s)))[:, 1:]
                                        for s in range(3)])
    assert distances[1.0].mean() < 0.9 * distances[0.0].mean()
    assert (distances[1.0][..., -1].mean(0) < distances[0.0][..., -1].mean(0)).all()  # every row's end is closer


def test_pseudo_huber_goal_loss_is_flat_at_the_goal_and_of_unit_slope_far_away():
    guidance = GoalGuidance(torch.zeros(1, 2), [0, 1], loss="pseudo_huber")
    ctx = type("Ctx", (), {"to_env": staticmethod(lambda x: {"observations": x})})()
    d = torch.tensor([0.0, 1e-3, 10.0, 10.1], requires_grad=True)
    points = torch.stack([d, torch.zeros_like(d)], -1)[None]  # (1, 4, 2) on the x axis, the goal at the origin
    (grad,) = torch.autograd.grad(guidance.loss(points, ctx), d)
    assert abs(grad[1]) < 1e-2 and grad[2] == pytest.approx(1.0, abs=2e-3)
    tanh = GoalGuidance(torch.zeros(1, 2), [0, 1])
    (grad_tanh,) = torch.autograd.grad(tanh.loss(points, ctx), d)
    assert grad_tanh[1] == pytest.approx(0.5, abs=1e-3) and grad_tanh[2] < 1e-3  # DF's: strongest at the goal
    with pytest.raises(ValueError, match="goal_loss"):
        GoalGuidance(torch.zeros(1, 2), [0, 1], loss="l2")


def test_approach_goal_loss_is_pseudo_huber_on_far_rows_and_tanh_on_near_ones():
    ctx = type("Ctx", (), {"to_env": staticmethod(lambda x: {"observations": x})})()
    points = torch.randn(2, 5, 2)
    loss = {kind: [GoalGuidance(torch.zeros(1, 2), [0, 1], loss=kind).loss(points[i:i + 1], ctx) for i in range(2)]
            for kind in ("tanh", "pseudo_huber")}
    approach = GoalGuidance(torch.zeros(2, 2), [0, 1], loss="approach", far=torch.tensor([True, False]))
    torch.testing.assert_close(approach.loss(points, ctx), loss["pseudo_huber"][0] + loss["tanh"][1])
    held = GoalGuidance(torch.zeros(2, 2), [0, 1], loss="approach", far=torch.tensor([True, False]), hold_scale=3.0)
    torch.testing.assert_close(held.loss(points, ctx), loss["pseudo_huber"][0] + 3.0 * loss["tanh"][1])
    with pytest.raises(ValueError, match="far"):
        GoalGuidance(torch.zeros(2, 2), [0, 1], loss="approach")


def test_brake_penalizes_planned_speed_beyond_the_drift_in_holding_rows_only():
    ctx = type("Ctx", (), {"to_env": staticmethod(lambda x: {"observations": x})})()
    x = torch.randn(2, 5, 4)  # (x, y, vx, vy), the goal at the origin
    guidance = GoalGuidance(torch.zeros(2, 2), [0, 1], brake=2.0, velocity_dims=[2, 3],
                            holding=torch.tensor([False, True]), brake_gain=0.5)
    plain = GoalGuidance(torch.zeros(2, 2), [0, 1])
    excess = (x[1, :, 2:] + 0.5 * x[1, :, :2]).norm(dim=-1)
    expected = plain.loss(x, ctx) + 2.0 * (excess ** 2).sum()
    torch.testing.assert_close(guidance.loss(x, ctx), expected)
    with pytest.raises(ValueError, match="brake"):
        GoalGuidance(torch.zeros(2, 2), [0, 1], brake=1.0)


def test_hold_brake_slows_the_plans_of_agents_at_their_final_goal_only(tiny_diffusion_forcing, obs_batch):
    module, dm = tiny_diffusion_forcing
    goal = np.array([[1.0, -1.2], [-1.0, 1.0], [0.3, 1.0]])  # rows 0 and 2 within 0.5 m of their agent, row 1 not

    def speeds(**settings) -> torch.Tensor:  # x0 = x_t: the guidance gradient is the brake's own
        planner = toy_planner(tiny_diffusion_forcing, IdentityTokens(), goal_loss="approach", approach_radius=0.5,
                              **settings)
        plan = planner.plan(obs_batch, goal=goal, generator=gen(4))
        return plan.observations[..., 2:].norm(dim=-1).mean(1)

    free, braked = speeds(), speeds(hold_brake=0.01)
    assert (braked[[0, 2]] < 0.8 * free[[0, 2]]).all()
    torch.testing.assert_close(braked[1], free[1])
    planner = module.to_planner(dm.task, 1, hold_brake=1.0, approach_radius=0.5)
    obs, goal = torch.tensor(obs_batch, dtype=torch.float32), torch.tensor(goal, dtype=torch.float32)
    assert planner.goal_guidance(goal, obs).holding.tolist() == [True, False, True]
    waypoint_rows = planner.goal_guidance(goal, obs, final_goal=goal + torch.tensor([[3.0, 0], [0, 0], [0, 0]]))
    assert waypoint_rows.holding.tolist() == [False, False, True]  # row 0 is at a waypoint, not at its goal
    with pytest.raises(ValueError, match="hold_brake"):
        module.to_planner(dm.task, 1, hold_brake=-1.0)
    with pytest.raises(ValueError, match="brake_radius"):
        module.to_planner(dm.task, 1, hold_brake=1.0, brake_radius=0.0)


def test_lower_temperature_draws_plans_closer_together(tiny_diffusion_forcing, obs_batch):
    module, dm = tiny_diffusion_forcing
    obs = np.repeat(obs_batch[:1], 16, 0)  # one start, 16 draws

    def spread(**settings) -> float:
        planner = module.to_planner(dm.task, 1, num_inference_steps=4, **settings)
        return float(planner.plan(obs, generator=gen(5)).normalized.std(0).mean())

    assert spread(temperature=0.2) < 0.75 * spread()
    with pytest.raises(ValueError, match="temperature"):
        module.to_planner(dm.task, 1, temperature=0.0)


def test_clip_guided_keeps_a_strongly_guided_plan_inside_the_data_range(tiny_diffusion_forcing, obs_batch):
    module, dm = tiny_diffusion_forcing
    def plan_extent(clip: bool) -> float:
        planner = module.to_planner(dm.task, 1, num_inference_steps=4, guidance_scale=100.0, clip_guided=clip)
        plan = planner.plan(obs_batch, goal=GOAL, generator=gen(3))  # pulled hard enough to leave the data
        x = torch.cat([planner.normalizer.normalize("observations", plan.observations),
                       planner.normalizer.normalize("actions", plan.actions)], -1)
        return float(x.abs().max())

    assert plan_extent(clip=True) <= 1.0 + 1e-5
    assert plan_extent(clip=False) > 1.5
    with pytest.raises(ValueError, match="goal_loss"):
        module.to_planner(dm.task, 1, goal_loss="l2")


@pytest.mark.parametrize("goal_steps", [1, 3])
def test_goal_inpainting_pins_the_last_goal_steps_positions(tiny_diffusion_forcing, obs_batch, goal_steps):
    module, dm = tiny_diffusion_forcing
    planner = module.to_planner(dm.task, 1, num_inference_steps=4, goal_inpainting=True, goal_steps=goal_steps,
                                guidance_scale=0.0)
    plan = planner.plan(obs_batch, goal=GOAL, generator=gen(8))
    goal = torch.tensor(GOAL, dtype=torch.float32).expand(3, goal_steps, 2)
    torch.testing.assert_close(plan.observations[:, -goal_steps:, :2], goal)
    assert not torch.allclose(plan.observations[:, -goal_steps - 1, :2], goal[:, 0])
    with pytest.raises(ValueError, match="goal_steps"):
        module.to_planner(dm.task, 1, goal_steps=module.horizon)


def test_inpaint_radius_pins_only_the_rows_near_their_goal(tiny_diffusion_forcing, obs_batch):
    module, dm = tiny_diffusion_forcing
    planner = module.to_planner(dm.task, 1, num_inference_steps=4, goal_inpainting=True, inpaint_radius=0.5,
                                guidance_scale=0.0)
    goal = np.array([[1.0, -1.2], [-1.0, 1.0], [0.3, 1.0]])  # rows 0 and 2 within 0.5 m of their agent, row 1 not
    plan = planner.plan(obs_batch, goal=goal, generator=gen(8))
    last = plan.observations[:, -1, :2]
    torch.testing.assert_close(last[[0, 2]], torch.tensor(goal[[0, 2]], dtype=torch.float32))
    assert (last[1] - torch.tensor(goal[1], dtype=torch.float32)).norm() > 0.5
    with pytest.raises(ValueError, match="inpaint_radius"):
        module.to_planner(dm.task, 1, goal_inpainting=True, inpaint_radius=-1.0)


# -- rollouts and the control loop ----------------------------------------------------------------------------------
def test_rollout_to_four_horizons_is_finite_and_starts_with_the_plan(diffusion_forcing_planner, obs_batch):
    planner = diffusion_forcing_planner
    plan = planner.rollout(obs_batch, 4 * planner.horizon, generator=gen(9))
    assert plan.observations.shape == (3, 48, 4) and plan.actions.shape == (3, 48, 2) and plan.stride == 1
    assert torch.isfinite(plan.observations).all() and torch.isfinite(plan.actions).all()
    first = planner.plan(obs_batch, generator=gen(9))
    assert torch.equal(plan.observations[:, :12], first.observations)  # the causal first window is the plan
    assert planner.rollout(obs_batch, 5, generator=gen(9)).observations.shape == (3, 5, 4)
    with pytest.raises(ValueError, match="steps"):
        planner.rollout(obs_batch, 0)


@pytest.mark.parametrize("rollout_context", [1, 2])
def test_rollout_is_continuous_at_the_window_seams(tiny_diffusion_forcing, obs_batch, rollout_context):
    """A causal toy that continues each token in a straight line: a rollout past the horizon is one straight line
    exactly when every window starts from the clean end of the one before."""
    velocity = torch.full((6,), 0.002)
    planner = toy_planner(tiny_diffusion_forcing, ConstantVelocity(3, velocity), rollout_context=rollout_context)
    plan = planner.rollout(obs_batch, 4 * planner.horizon, generator=gen(10))
    steps = plan.normalized[..., planner.layout.channels("observations")].diff(dim=1)
    assert plan.normalized.shape[1] == 48
    torch.testing.assert_close(steps, torch.full_like(steps, 0.002), rtol=0, atol=1e-5)


def test_act_executes_the_first_tokens_actions_and_replans_every_token(diffusion_forcing_planner, obs_batch):
    planner = diffusion_forcing_planner
    assert planner.replan_every == planner.frame_stack == 3 and planner.action_source == "diffused"
    planner.reset(seed=1)
    plans, actions = [], []
    for _ in range(6):
        actions.append(planner.act(obs_batch))
        plans.append(planner.current_plan)
    assert plans[0] is plans[2] and plans[3] is not plans[2] and plans[3] is plans[5]
    for k in range(3):
        np.testing.assert_allclose(actions[k], plans[0].actions[:, k].numpy())
        np.testing.assert_allclose(actions[3 + k], plans[3].actions[:, k].numpy())


def test_settings_are_checked_and_saved(diffusion_forcing_planner, tmp_path):
    from diffplan import Planner

    planner = diffusion_forcing_planner
    planner.save_pretrained(tmp_path / "p")
    loaded = Planner.from_pretrained(tmp_path / "p", scheduling="full_sequence", mctg_samples=2)
    assert loaded.scheduling == "full_sequence" and loaded.mctg_samples == 2 and loaded.frame_stack == 3
    with pytest.raises(ValueError, match="scheduling"):
        Planner.from_pretrained(tmp_path / "p", scheduling="spiral")
    with pytest.raises(ValueError, match="rollout_context"):
        Planner.from_pretrained(tmp_path / "p", rollout_context=4)
    with pytest.raises(ValueError, match="goal_metric must be 'straight' or 'corridors'"):
        Planner.from_pretrained(tmp_path / "p", goal_metric="manhattan")
    corridors = Planner.from_pretrained(tmp_path / "p", goal_metric="corridors")
    assert isinstance(corridors.goal_guidance(torch.zeros(1, 2)).distance, CorridorDistance)


def test_inverse_dynamics_actions_come_from_the_planned_next_state(tiny_diffusion_forcing, obs_batch, tmp_path):
    from diffplan import Planner

    module, dm = tiny_diffusion_forcing
    torch.manual_seed(0)
    with_head = DiffusionForcing(module.normalizer, 12, frame_stack=3, num_train_timesteps=20,
                                 inverse_dynamics_kwargs={"hidden": 16},
                                 denoiser_kwargs={"d_model": 16, "depth": 1, "heads": 2, "emb_dim": 16})
    assert with_head.losses(first_batch(dm))["inverse_dynamics"] > 0
    planner = with_head.to_planner(dm.task, 1, num_inference_steps=3, action_source="inverse_dynamics")
    planner.reset(seed=0)
    obs = torch.as_tensor(obs_batch, dtype=torch.float32)
    actions = [planner.act(obs_batch) for _ in range(2)]
    norm = planner.normalizer
    for k in range(2):
        expected = norm.unnormalize("actions", with_head.inverse_dynamics(
            norm.normalize("observations", obs), norm.normalize("observations", planner.current_plan.observations[:, k + 1])))
        torch.testing.assert_close(torch.as_tensor(actions[k]), expected.detach())
    planner.save_pretrained(tmp_path / "p")
    assert Planner.from_pretrained(tmp_path / "p").action_source == "inverse_dynamics"
    with pytest.raises(ValueError, match="inverse_dynamics_kwargs"):
        module.to_planner(dm.task, 1, action_source="inverse_dynamics")
    with pytest.raises(ValueError, match="no value head"):
        DiffusionForcing(module.normalizer, 12, frame_stack=3, value_head=True)


def record_contexts(planner, monkeypatch) -> list:
    """Patch ``sample_window`` to record the clean context steps each plan starts from (env units)."""
    seen = []
    original = planner.sample_window

    def recording(obs, goal=None, context=None, **kwargs):
        seen.append(None if context is None else planner.to_plan(context))
        return original(obs, goal, context=context, **kwargs)

    monkeypatch.setattr(planner, "sample_window", recording)
    return seen


def test_act_plans_after_the_executed_observations_and_actions(diffusion_forcing_planner, obs_batch, monkeypatch):
    planner = diffusion_forcing_planner
    fs = planner.frame_stack
    seen = record_contexts(planner, monkeypatch)
    planner.reset(seed=3)
    observations, actions = [], []
    for i in range(2 * fs):
        obs = obs_batch + 0.01 * i  # a moving agent
        observations.append(obs)
        actions.append(planner.act(obs))
    assert len(seen) == 2 and all(c is not None for c in seen)
    replan = seen[1]
    torch.testing.assert_close(replan.observations, torch.as_tensor(np.stack(observations[:fs], 1), dtype=torch.float32), atol=1e-5, rtol=0)
    torch.testing.assert_close(replan.actions, torch.as_tensor(np.stack(actions[:fs], 1), dtype=torch.float32), atol=1e-5, rtol=0)
    plan = planner.current_plan
    assert plan.observations.shape[1] == planner.horizon - fs
    torch.testing.assert_close(plan.observations[:, 0], torch.as_tensor(observations[fs], dtype=torch.float32), atol=1e-5, rtol=0)


def test_an_episode_starts_from_the_first_observation_at_rest(diffusion_forcing_planner, obs_batch, monkeypatch):
    planner = diffusion_forcing_planner
    seen = record_contexts(planner, monkeypatch)
    planner.reset(seed=3)
    planner.act(obs_batch)
    start = seen[0]
    at_rest = torch.as_tensor(obs_batch, dtype=torch.float32).clone()
    at_rest[:, list(planner.task.velocity_dims)] = 0
    torch.testing.assert_close(start.observations, at_rest[:, None].expand_as(start.observations), atol=1e-5, rtol=0)
    torch.testing.assert_close(start.actions, torch.zeros_like(start.actions), atol=1e-5, rtol=0)


def test_without_act_context_act_plans_from_the_observation_alone(tiny_diffusion_forcing, obs_batch, monkeypatch):
    module, dm = tiny_diffusion_forcing
    planner = module.to_planner(dm.task, dm.stride, num_inference_steps=4, act_context=False)
    seen = record_contexts(planner, monkeypatch)
    planner.reset(seed=3)
    for _ in range(2 * planner.frame_stack):
        planner.act(obs_batch)
    assert seen == [None, None] and planner.current_plan.observations.shape[1] == planner.horizon


def test_plan_with_a_history_of_observations_only_fails_clearly(diffusion_forcing_planner, obs_batch):
    history = np.repeat(obs_batch[:, None], diffusion_forcing_planner.frame_stack, 1)
    with pytest.raises(ValueError, match="executed observations and actions"):
        diffusion_forcing_planner.plan(obs_batch, history=history)


# -- goal conditioning ----------------------------------------------------------------------------------------------
def test_the_goal_embedding_starts_at_zero_so_the_untrained_model_ignores_the_goal(goal_conditioned_df):
    (module, _), untrained = goal_conditioned_df
    denoiser = TransformerDenoiser(**module.denoiser.config)
    denoiser.load_state_dict(untrained)
    x, t = torch.randn(2, 4, 3 * module.layout.transition_dim), torch.tensor([5, 9])
    torch.testing.assert_close(denoiser(x, t, torch.zeros(2, 2)), denoiser(x, t, torch.randn(2, 2)))


def test_a_goal_conditioned_plan_depends_on_the_goal_and_needs_one(goal_conditioned_df, obs_batch, tmp_path):
    (module, dm), _ = goal_conditioned_df
    torch.manual_seed(0)
    nn.init.normal_(module.denoiser.cond[-1].weight)  # as if trained: 3 steps leave the zero-started embedding tiny
    planner = module.to_planner(dm.task, dm.stride, num_inference_steps=4, guidance_scale=0.0)
    assert planner.goal_conditioned and module.goal_cond(first_batch(dm)).shape == (8, 2)
    here = planner.plan(obs_batch, goal=np.array([1.0, 1.0]), generator=gen()).observations
    there = planner.plan(obs_batch, goal=np.array([-1.0, -1.0]), generator=gen()).observations
    assert not torch.allclose(here, there)  # same noise, no guidance: only the condition differs
    with pytest.raises(ValueError, match="trained goal-conditioned"):
        planner.plan(obs_batch, generator=gen())
    planner.save_pretrained(tmp_path / "gc")
    again = DiffusionForcingPlanner.from_pretrained(tmp_path / "gc")
    torch.testing.assert_close(again.plan(obs_batch, goal=np.array([1.0, 1.0]), generator=gen()).observations, here)


def test_goal_condition_needs_goal_dims(tiny_diffusion_forcing):
    _, dm = tiny_diffusion_forcing
    with pytest.raises(ValueError, match="goal_condition needs the task's goal_dims"):
        DiffusionForcing(dm.normalizer, dm.horizon, frame_stack=3, goal_condition=True)
