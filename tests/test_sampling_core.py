"""The sampling core: per-token steps, step coefficients, scheduling matrices, the denoise loop's hooks,
trajectories, recurrence, gradients, and value guidance against hand-computed steps."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from torch.overrides import TorchFunctionMode

import diffplan
from diffplan.algorithms.hierarchical import HierarchicalPlanner
from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.sampler import denoise
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.diffusion.scheduling import autoregressive, full_sequence, pyramid, rows_needed, scheduling_matrix
from diffplan.guidance.base import Guidance, GuidanceContext
from diffplan.guidance.value import ValueGuidance
from diffplan.planner import Plan, Planner

PACKAGE = str(Path(diffplan.__file__).parent)

T = 20


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A deterministic denoiser that depends on x and on t given as (B,) or (B, H)."""
    level = (t.float() + 1) / T
    level = level.reshape(*level.shape, *([1] * (x.dim() - level.dim())))
    return torch.tanh(x) * (1 - 0.5 * level) + 0.1 * level


def ctx_for(schedule: NoiseSchedule, t: torch.Tensor, t_prev: torch.Tensor, constraints: Inpaint | None = None,
            eta: float = 1.0) -> GuidanceContext:
    return GuidanceContext(schedule=schedule, t=t, t_prev=t_prev, eta=eta, step_index=0, num_steps=1,
                           constraints=constraints)


# -- 1. per-token steps ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("prediction_type", ["sample", "epsilon"])
def test_clean_token_beside_a_noisy_one_gives_no_nan(prediction_type):
    s = NoiseSchedule(T, prediction_type=prediction_type)
    x = torch.randn(1, 2, 3, generator=gen())
    out = denoise(toy_model, s, x, torch.tensor([[[-1, 5]]]), eta=1.0, generator=gen(1))
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, 0], x[:, 0])  # the clean token is held
    assert not torch.equal(out[:, 1], x[:, 1])  # the noisy one moved


@pytest.mark.parametrize("prediction_type", ["sample", "epsilon"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_held_tokens_pass_through_a_step_bit_unchanged(prediction_type, eta):
    s = NoiseSchedule(T, prediction_type=prediction_type)
    # (S=2, B=2, H=3); row 0 -> row 1 holds (0,0) [clean], (0,1), (1,1), (1,2); row 1 -> clean holds (0,0)
    timesteps = torch.tensor([[[-1, 5, 9], [5, 5, 9]],
                              [[-1, 5, 3], [2, 5, 9]]])
    held_first = torch.tensor([[True, True, False], [False, True, True]])
    x = torch.randn(2, 3, 4, generator=gen())
    _, traj = denoise(toy_model, s, x, timesteps, eta=eta, generator=gen(1), return_trajectory=True)
    assert torch.isfinite(traj.samples).all()
    first, second = traj.samples[1], traj.samples[2]
    assert torch.equal(first[held_first], x[held_first])
    assert not torch.isclose(first[~held_first], x[~held_first]).all(-1).any()  # every moving token moved
    assert torch.equal(second[0, 0], first[0, 0])  # clean stays clean, bit for bit
    assert not torch.isclose(second[1:], first[1:]).all(-1).any()


@pytest.mark.parametrize("prediction_type", ["sample", "epsilon"])
def test_step_holds_tokens_with_equal_levels_even_with_noise(prediction_type):
    s = NoiseSchedule(T, prediction_type=prediction_type)
    x, x0, z = (torch.randn(2, 4, 3, generator=gen(i)) for i in range(3))
    t = torch.tensor([[-1, 4, 4, 10], [7, -1, 0, 10]])
    t_prev = torch.tensor([[-1, 4, 2, 3], [7, -1, -1, 10]])
    out = s.step(x, x0, t, t_prev, 1.0, z)
    held = t == t_prev
    assert torch.equal(out.prev_sample[held], x[held]) and torch.equal(out.mean[held], x[held])
    assert (out.std.expand_as(x)[held] == 0).all()
    assert torch.isfinite(out.prev_sample).all() and not torch.isclose(out.prev_sample[~held], x[~held]).all(-1).any()


# -- 2. step coefficients -------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [0, 1, 7, T - 1])
def test_eta_one_consecutive_step_is_ddpms_posterior(t):
    s = NoiseSchedule(T)
    ddpm = DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                         clip_sample=False)
    x, x0 = torch.randn(2, 5, 3, generator=gen(0)), torch.randn(2, 5, 3, generator=gen(1))
    tt, tp = torch.tensor(t), torch.tensor(t - 1)
    out = s.step(x, x0, tt, tp, 1.0, torch.randn(2, 5, 3, generator=gen(2)))
    abar = ddpm.alphas_cumprod
    abar_prev = abar[t - 1] if t > 0 else torch.tensor(1.0)
    beta = 1 - abar[t] / abar_prev
    mean = (abar_prev.sqrt() * beta / (1 - abar[t])) * x0 + ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar[t])) * x
    torch.testing.assert_close(out.mean, mean, atol=1e-5, rtol=1e-5)
    std = ddpm._get_variance(t).sqrt() if t > 0 else torch.tensor(0.0)
    torch.testing.assert_close(out.std.reshape(()), std, atol=1e-6, rtol=1e-5)
    # and the whole step, noise included (diffusers draws its noise from the generator it is given)
    ref = ddpm.step(x0, t, x, generator=gen(3)).prev_sample
    z = torch.randn(x.shape, generator=gen(3)) if t > 0 else torch.zeros_like(x)
    torch.testing.assert_close(s.step(x, x0, tt, tp, 1.0, z).prev_sample, ref, atol=1e-5, rtol=1e-5)


def test_coefficients_take_scalar_per_sample_and_per_token_timesteps():
    s = NoiseSchedule(T)
    like = torch.zeros(3, 4, 2)
    t, t_prev = torch.tensor([9, 5, 0]), torch.tensor([6, 5, -1])
    per_sample = s.coefficients(t, t_prev, 0.7, like)
    per_token = s.coefficients(t[:, None].expand(3, 4), t_prev[:, None].expand(3, 4), 0.7, like)
    for name in ("alpha_bar", "alpha_bar_prev", "sigma", "moves"):
        a, b = getattr(per_sample, name), getattr(per_token, name)
        assert a.shape == (3, 1, 1) and b.shape == (3, 4, 1)
        assert torch.equal(a.expand_as(like), b.expand_as(like))
    for i in range(3):
        scalar = s.coefficients(t[i], t_prev[i], 0.7, like)
        assert scalar.sigma.shape == (1, 1, 1)
        for name in ("alpha_bar", "alpha_bar_prev", "sigma", "moves"):
            assert torch.equal(getattr(scalar, name)[0], getattr(per_sample, name)[i])
    assert per_sample.moves.flatten().tolist() == [True, False, True]
    assert per_sample.sigma[1].item() == 0 and per_sample.sigma[0].item() > 0


# -- 3. scheduling matrices -----------------------------------------------------------------------------------
MATRICES = [("full_sequence", 1.0), ("pyramid", 0.0), ("pyramid", 0.5), ("pyramid", 1.0), ("pyramid", 2.5),
            ("autoregressive", 1.0)]


@pytest.mark.parametrize("kind, u", MATRICES)
@pytest.mark.parametrize("steps, horizon", [(5, 6), (3, 1), (4, 9)])
def test_scheduling_matrices_descend_from_the_noisiest_level_to_clean(kind, u, steps, horizon):
    s = NoiseSchedule(T)
    m = scheduling_matrix(kind, s, steps, horizon, uncertainty=u)
    assert m.shape == (rows_needed(kind, steps, horizon, u) + 1, horizon)
    assert (m[1:] <= m[:-1]).all()  # levels never rise
    assert (m[0] == s.sampling_timesteps(steps)[0]).all()  # start: every token at the noisiest timestep
    assert (m[-1] == -1).all() and not (m[-2] == -1).all()  # one final clean row, no wasted rows
    assert (m[1:] != m[:-1]).any(1).all()  # every row moves some token (each denoiser call does work)
    assert set(m.unique().tolist()) <= {-1, *s.sampling_timesteps(steps).tolist()}


@pytest.mark.parametrize("u", [0.5, 1.0, 3.0])
def test_pyramid_finishes_earlier_tokens_first(u):
    s = NoiseSchedule(T)
    m = pyramid(s, 5, 8, uncertainty=u)
    finish = (m == -1).int().argmax(0)  # first row each token is clean
    assert (finish[1:] >= finish[:-1]).all() and finish[0] < finish[-1]
    assert (m[:, 1:] >= m[:, :-1]).all()  # at every row, later tokens are at least as noisy


def test_pyramid_without_lag_is_full_sequence_and_autoregressive_moves_one_token_per_row():
    s = NoiseSchedule(T)
    assert torch.equal(pyramid(s, 5, 6, uncertainty=0.0), full_sequence(s, 5, 6))
    m = autoregressive(s, 3, 4)
    assert ((m[1:] != m[:-1]).sum(1) == 1).all()
    with pytest.raises(ValueError, match="Unknown scheduling matrix 'spiral'"):
        scheduling_matrix("spiral", s, 3, 4)


def test_full_sequence_matrix_samples_exactly_like_scalar_timesteps():
    s = NoiseSchedule(T)
    x = torch.randn(2, 6, 3, generator=gen())
    m = full_sequence(s, 5, 6)
    per_token = m[:, None, :].expand(-1, 2, -1)
    a = denoise(toy_model, s, x, s.sampling_timesteps(5), eta=1.0, generator=gen(1))
    b = denoise(toy_model, s, x, per_token, eta=1.0, generator=gen(1))
    assert torch.equal(a, b)


# -- 4. trajectories ------------------------------------------------------------------------------------------
def pinned(x: torch.Tensor) -> Inpaint:
    return Inpaint.empty(x).pin(0, [0, 1], torch.full((x.shape[0], 2), 0.5))


def test_trajectory_runs_from_the_constrained_start_to_the_result():
    s = NoiseSchedule(T)
    x = torch.randn(2, 6, 3, generator=gen())
    c, ts = pinned(x), s.sampling_timesteps(4)
    out, traj = denoise(toy_model, s, x, ts, constraints=c, eta=1.0, generator=gen(1), return_trajectory=True)
    assert traj.samples.shape == (5, 2, 6, 3) and traj.timesteps.shape == (5, 2)
    assert torch.equal(traj.samples[0], c.apply(x)) and torch.equal(traj.samples[-1], out)
    assert torch.equal(traj.timesteps[:-1], ts[:, None].expand(4, 2)) and (traj.timesteps[-1] == -1).all()
    plain = denoise(toy_model, s, x, ts, constraints=c, eta=1.0, generator=gen(1))
    assert torch.equal(out, plain)  # recording changes nothing


def test_trajectory_of_a_scheduling_matrix_records_per_token_levels():
    s = NoiseSchedule(T)
    m = pyramid(s, 3, 4)
    x = torch.randn(2, 4, 3, generator=gen())
    out, traj = denoise(toy_model, s, x, m[:, None].expand(-1, 2, -1), return_trajectory=True)
    assert traj.samples.shape == (len(m), 2, 4, 3) and torch.equal(traj.samples[-1], out)
    assert torch.equal(traj.timesteps, m[:, None].expand(-1, 2, -1))


# -- 5. recurrence --------------------------------------------------------------------------------------------
class Counting:
    def __init__(self):
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x, t):
        self.inputs.append(x.clone())
        return toy_model(x, t)


def test_recurrence_one_is_the_default_and_n_calls_the_model_n_times_per_step():
    s = NoiseSchedule(T)
    x = torch.randn(2, 6, 3, generator=gen())
    c, ts = pinned(x), s.sampling_timesteps(4)
    default = denoise(toy_model, s, x, ts, constraints=c, eta=1.0, generator=gen(1))
    assert torch.equal(denoise(toy_model, s, x, ts, constraints=c, eta=1.0, generator=gen(1), recurrence=1), default)
    model = Counting()
    out = denoise(model, s, x, ts, constraints=c, eta=1.0, generator=gen(1), recurrence=3)
    assert len(model.inputs) == 3 * len(ts) and not torch.equal(out, default)
    for x_t in [*model.inputs, out]:  # constraints hold on every re-noised input too
        assert torch.equal(x_t[c.mask], c.values[c.mask])

    class Recurrent(Guidance):
        recurrence = 2

    model = Counting()
    denoise(model, s, x, ts, guidance=Recurrent(), eta=1.0, generator=gen(1))
    assert len(model.inputs) == 2 * len(ts)  # the guidance's recurrence is the default


# -- 6. gradients ---------------------------------------------------------------------------------------------
def test_unguided_sampling_runs_the_model_without_autograd():
    s = NoiseSchedule(T)
    seen = []

    def model(x, t):
        seen.append(torch.is_grad_enabled())
        return toy_model(x, t)

    with torch.enable_grad():
        denoise(model, s, torch.randn(1, 4, 2), s.sampling_timesteps(3), guidance=Guidance())
    assert seen == [False] * 3


def test_needs_grad_guidance_gets_x0_with_a_graph_back_to_x_t():
    s = NoiseSchedule(T)
    scale = torch.linspace(0.5, 1.5, 4 * 2).reshape(1, 4, 2)
    grads = []

    class DPS(Guidance):
        needs_grad = True

        def guide_x0(self, x0, x_t, ctx):
            assert x_t.requires_grad and x0.grad_fn is not None
            (g,) = torch.autograd.grad((x0**2).sum(), x_t)
            grads.append((g, x_t.detach().clone()))
            return x0

    denoise(lambda x, t: scale * x, s, torch.randn(3, 4, 2, generator=gen()), s.sampling_timesteps(3),
            guidance=DPS(), clip_denoised=False)
    assert len(grads) == 3
    for g, x_t in grads:  # x0 = A x_t  =>  d sum(x0^2) / d x_t = 2 A^2 x_t
        torch.testing.assert_close(g, 2 * scale**2 * x_t)


# -- 7. hook order --------------------------------------------------------------------------------------------
def test_hooks_run_in_order_predict_x0_step_guide_step_constraints():
    calls: list[str] = []

    class Recording(Guidance):
        def predict(self, model_fn, x, t, ctx):
            calls.append("predict")
            return model_fn(x, t)

        def guide_x0(self, x0, x_t, ctx):
            calls.append("guide_x0")
            return x0

        def guide_step(self, x_prev, ctx):
            calls.append("guide_step")
            return x_prev

    class RecordingSchedule(NoiseSchedule):
        def step(self, *args, **kwargs):
            calls.append("step")
            return super().step(*args, **kwargs)

    class RecordingInpaint(Inpaint):
        def apply(self, x):
            calls.append("constraints")
            return super().apply(x)

    def model(x, t):
        calls.append("model")
        return toy_model(x, t)

    s = RecordingSchedule(T)
    x = torch.randn(1, 4, 2)
    c = pinned(x)
    denoise(model, s, x, s.sampling_timesteps(2), constraints=RecordingInpaint(c.mask, c.values), guidance=Recording())
    one_step = ["predict", "model", "guide_x0", "step", "guide_step", "constraints"]
    assert calls == ["constraints", *one_step, *one_step]


# -- 9. value guidance ----------------------------------------------------------------------------------------
class Linear(torch.nn.Module):
    """V(x, t) = sum(w * x) per sample."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = w

    def forward(self, x, t):
        return (self.w * x).sum((1, 2))


def test_value_guidance_step_matches_the_hand_computed_update():
    s = NoiseSchedule(T)
    ddpm = DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2")
    x = torch.randn(2, 5, 3, generator=gen())
    w = torch.randn(1, 5, 3, generator=gen(1))
    c = pinned(x)
    x = c.apply(x)
    level = 7  # the level of the sample just made
    ctx = ctx_for(s, torch.tensor([9, 9]), torch.tensor([level, level]), constraints=c)
    out = ValueGuidance(Linear(w), scale=0.3, n_guide_steps=2, t_stopgrad=2).guide_step(x, ctx)
    var = ddpm._get_variance(level)
    expected = x + 2 * 0.3 * var * w
    torch.testing.assert_close(out[~c.mask], expected.expand_as(x)[~c.mask])
    assert torch.equal(out[c.mask], x[c.mask])


def test_value_guidance_is_a_no_op_at_scale_zero_and_below_t_stopgrad():
    s = NoiseSchedule(T)
    x = torch.randn(2, 5, 3, generator=gen())
    w = torch.ones(1, 5, 3)
    ctx = ctx_for(s, torch.tensor([9, 9]), torch.tensor([7, 7]))
    assert torch.equal(ValueGuidance(Linear(w), scale=0.0, t_stopgrad=0).guide_step(x, ctx), x)
    low = ctx_for(s, torch.tensor([3, 3]), torch.tensor([1, 1]))
    assert torch.equal(ValueGuidance(Linear(w), scale=5.0, t_stopgrad=2).guide_step(x, low), x)
    mixed = ctx_for(s, torch.tensor([9, 3]), torch.tensor([7, 1]))  # only row 0 is at or above t_stopgrad
    out = ValueGuidance(Linear(w), scale=5.0, t_stopgrad=2).guide_step(x, mixed)
    assert torch.equal(out[1], x[1]) and (out[0] > x[0]).all()


# -- planners: guidance, units, device, composition -----------------------------------------------------------
class RecordingGuidance(Guidance):
    """Identity hooks that count their calls and keep the last context and sample they saw."""

    def __init__(self):
        super().__init__()
        self.calls = {"predict": 0, "guide_x0": 0, "guide_step": 0}
        self.ctx: GuidanceContext | None = None
        self.x: torch.Tensor | None = None

    def predict(self, model_fn, x, t, ctx):
        self.calls["predict"] += 1
        return model_fn(x, t)

    def guide_x0(self, x0, x_t, ctx):
        self.calls["guide_x0"] += 1
        return x0

    def guide_step(self, x_prev, ctx):
        self.calls["guide_step"] += 1
        self.ctx, self.x = ctx, x_prev.clone()
        return x_prev


def test_guidance_context_maps_samples_to_environment_units_and_back(any_planner, obs_batch):
    g = RecordingGuidance()
    any_planner.plan(obs_batch, guidance=g, generator=gen())
    ctx, x = g.ctx, g.x
    env = ctx.to_env(x)
    obs_channels = ctx.layout.channels("observations")
    torch.testing.assert_close(env["observations"], ctx.normalizer.unnormalize("observations", x[..., obs_channels]))
    if ctx.layout.act_dim:
        torch.testing.assert_close(env["actions"], ctx.normalizer.unnormalize("actions",
                                                                              x[..., ctx.layout.channels("actions")]))
    else:
        assert set(env) == {"observations"}
    torch.testing.assert_close(ctx.from_env(env), x, atol=1e-5, rtol=1e-5)


def test_guidance_context_of_the_last_step_gives_the_plan(diffuser_planner, obs_batch):
    g = RecordingGuidance()
    plan = diffuser_planner.plan(obs_batch, guidance=g, generator=gen())
    env = g.ctx.to_env(plan.normalized)
    torch.testing.assert_close(env["observations"], plan.observations)
    torch.testing.assert_close(env["actions"], plan.actions)


def test_every_planner_takes_guidance_through_plan_act_and_from_pretrained(any_planner, obs_batch, tmp_path):
    g = RecordingGuidance()
    any_planner.plan(obs_batch, guidance=g, generator=gen())
    assert all(n > 0 for n in g.calls.values()), g.calls
    acting = RecordingGuidance()
    any_planner.guidance = acting
    any_planner.reset()
    any_planner.act(obs_batch)
    assert all(n > 0 for n in acting.calls.values()), acting.calls
    any_planner.guidance = None
    any_planner.save_pretrained(tmp_path / "p")
    loaded = type(any_planner).from_pretrained(tmp_path / "p", guidance=g)
    assert loaded.guidance is g


def test_identity_guidance_gives_the_unguided_plan_bit_for_bit(any_planner, obs_batch):
    plain = any_planner.plan(obs_batch, generator=gen(3))
    guided = any_planner.plan(obs_batch, guidance=RecordingGuidance(), generator=gen(3))
    assert torch.equal(plain.observations, guided.observations) and torch.equal(plain.actions, guided.actions)


def test_unknown_guidance_method_fails_in_one_line(any_planner, obs_batch, tmp_path):
    any_planner.save_pretrained(tmp_path / "p")

    def act_with_a_spec():
        any_planner.guidance = {"method": "nope"}
        any_planner.act(obs_batch)

    for call in (lambda: type(any_planner).from_pretrained(tmp_path / "p", guidance={"method": "nope"}),
                 lambda: any_planner.plan(obs_batch, guidance={"method": "nope"}), act_with_a_spec):
        with pytest.raises(ValueError, match="Unknown guidance method 'nope'") as err:
            call()
        assert "\n" not in str(err.value)


def test_guidance_none_loads_a_folder_without_building_its_guidance(diffuser_planner, tmp_path):
    diffuser_planner.guidance = {"method": "nope"}  # a spec this version cannot build
    diffuser_planner.save_pretrained(tmp_path / "p")
    diffuser_planner.guidance = None
    with pytest.raises(ValueError, match="Unknown guidance method 'nope'"):
        type(diffuser_planner).from_pretrained(tmp_path / "p")
    assert type(diffuser_planner).from_pretrained(tmp_path / "p", guidance="none").guidance is None
    with pytest.raises(ValueError, match='guidance is a Guidance, a JSON spec dict or "none"'):
        type(diffuser_planner).from_pretrained(tmp_path / "p", guidance="tfg")


FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.zeros, torch.ones, torch.full, torch.empty,
             torch.arange, torch.linspace, torch.eye, torch.tensor, torch.as_tensor}


class FactoryCalls(TorchFunctionMode):
    """Records the tensor factories that diffplan's own code calls, with the device each asked for."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, object, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        converts = func is torch.as_tensor and args and isinstance(args[0], torch.Tensor)  # no new tensor
        if func in FACTORIES and not converts:
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(PACKAGE):
                where = f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}"
                self.calls.append((func.__name__, kwargs.get("device"), where))
        return func(*args, **kwargs)


def test_plan_and_act_create_tensors_and_generators_on_the_planners_device(any_planner, obs_batch):
    """On a GPU, a tensor made without ``device=`` lands on the CPU: a device-mismatch error or a silent copy every
    call. A CPU-only box cannot see that from the results, so this asserts that every factory diffplan calls while
    planning and acting names the planner's device explicitly (``*_like`` factories follow their input)."""
    planner = any_planner
    planner.reset(seed=2)
    assert planner._act_generator().device == planner.device
    recorder = FactoryCalls()
    with recorder:
        planner.plan(obs_batch, generator=gen())
        planner.predict(obs_batch, episode_start=np.ones(3, dtype=bool))
        planner.act(obs_batch)
        planner.predict(obs_batch, episode_start=np.array([False, True, False]))
    assert recorder.calls
    implicit = [c for c in recorder.calls if c[1] is None or torch.device(c[1]) != planner.device]
    assert not implicit, f"factories without the planner's device: {sorted(set(implicit), key=str)}"


class StraightLines(Planner):
    """A stub planner: straight lines from each observation to its goal, zero actions."""

    def __init__(self, task, horizon: int, stride: int = 1):
        super().__init__(task)
        self.horizon, self.stride = horizon, stride

    @property
    def obs_dim(self) -> int:
        return 4

    def sample(self, context, n=1, guidance=None, generator=None):
        w = torch.linspace(0, 1, self.horizon)[None, :, None]
        obs = context.obs[:, None] + w * (context.goal - context.obs)[:, None]
        return Plan(observations=obs, actions=torch.zeros(obs.shape[0], self.horizon, 2), stride=self.stride)


def test_hierarchical_planner_composes_any_two_planners_through_sample(hierarchical_planner, obs_batch):
    high = hierarchical_planner.high
    low = StraightLines(hierarchical_planner.task, horizon=high.stride + 1)
    planner = HierarchicalPlanner(hierarchical_planner.task, high=high, low=low)
    plan = planner.plan(obs_batch, generator=gen(4))
    subgoals = high.plan(obs_batch, generator=gen(4)).observations
    torch.testing.assert_close(plan.subgoals, subgoals, rtol=0, atol=0)
    k = high.stride
    w = torch.arange(k, dtype=torch.float32)[None, None, :, None] / k
    joined = subgoals[:, :-1, None] + w * (subgoals[:, 1:] - subgoals[:, :-1])[:, :, None]  # (B, K - 1, k, O)
    expected = torch.cat([joined.flatten(1, 2), subgoals[:, -1:]], dim=1)
    torch.testing.assert_close(plan.observations, expected)
    assert plan.actions.shape[:2] == plan.observations.shape[:2] and plan.stride == 1
