"""Schedules against diffusers, the sampling loop's constraints, and guidance."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.sampler import denoise
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance import Compose, Guidance
from diffplan.guidance.value import ValueGuidance


@pytest.mark.parametrize("prediction_type", ["sample", "epsilon"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_step_matches_diffusers_ddim(prediction_type, eta):
    s = NoiseSchedule(100, prediction_type=prediction_type)
    ddim = DDIMScheduler.from_config(s.scheduler.config)
    ddim.set_timesteps(10)
    ts = s.sampling_timesteps(10)
    assert ts.tolist() == ddim.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    x, out, z = (torch.randn(2, 8, 3, generator=g) for _ in range(3))
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else torch.tensor(-1)
        ref = ddim.step(out, t, x, eta=eta, variance_noise=z).prev_sample
        torch.testing.assert_close(s.step(x, s.to_x0(out, x, t), t, t_prev, eta, z).prev_sample, ref, atol=1e-5,
                                   rtol=1e-5)


def test_add_noise_matches_diffusers_and_takes_per_token_timesteps():
    s = NoiseSchedule(50)
    ref = DDPMScheduler(num_train_timesteps=50, beta_schedule="squaredcos_cap_v2")
    x0, noise = torch.randn(4, 6, 2), torch.randn(4, 6, 2)
    t = torch.tensor([0, 10, 25, 49])
    torch.testing.assert_close(s.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))
    per_token = t[:, None].expand(4, 6)
    torch.testing.assert_close(s.add_noise(x0, noise, per_token), ref.add_noise(x0, noise, t))
    mixed = torch.tensor([[0, 49, 0, 49, 0, 49]]).expand(4, 6)
    out = s.add_noise(x0, noise, mixed)
    torch.testing.assert_close(out[:, 0], ref.add_noise(x0, noise, torch.zeros(4, dtype=torch.long))[:, 0])


def test_per_token_sampling_equals_scalar_when_tokens_agree():
    s = NoiseSchedule(20)
    model = lambda x, t: torch.tanh(x)
    ts = s.sampling_timesteps(5)
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(1))
    a = denoise(model, s, x, ts, eta=1.0, generator=torch.Generator().manual_seed(0))
    per_token = ts[:, None, None].expand(5, 2, 4)
    model_tok = lambda x, t: torch.tanh(x)
    b = denoise(model_tok, s, x, per_token, eta=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)


def test_inpainting_holds_at_every_step():
    s = NoiseSchedule(20)
    x = torch.randn(3, 8, 4)
    c = Inpaint.empty(x).pin(0, [2, 3], torch.full((3, 2), 0.5)).pin(-1, [2], torch.full((3, 1), -0.25))
    seen = []

    def model(x_t, t):
        seen.append(x_t.clone())
        return torch.randn_like(x_t)

    out = denoise(model, s, x, s.sampling_timesteps(6), constraints=c, eta=1.0,
                  guidance=ValueGuidance(lambda x_, t_: x_.sum((1, 2)), scale=0.5, t_stopgrad=0))
    assert len(seen) == 6
    for x_t in [*seen, out]:
        torch.testing.assert_close(x_t[c.mask], c.values[c.mask])


class MeanOfChannel(torch.nn.Module):
    def forward(self, x, t):
        return x[..., 0].mean(-1)


def test_value_guidance_scale_zero_is_a_no_op_and_positive_scale_raises_the_value():
    s = NoiseSchedule(20)
    model = lambda x, t: 0.5 * x
    x = torch.randn(4, 8, 3, generator=torch.Generator().manual_seed(0))
    ts = s.sampling_timesteps(10)
    plain = denoise(model, s, x, ts, eta=1.0, generator=torch.Generator().manual_seed(1))
    zero = denoise(model, s, x, ts, eta=1.0, generator=torch.Generator().manual_seed(1),
                   guidance=ValueGuidance(MeanOfChannel(), scale=0.0))
    torch.testing.assert_close(plain, zero, rtol=0, atol=0)
    guided = denoise(model, s, x, ts, eta=1.0, generator=torch.Generator().manual_seed(1),
                     guidance=ValueGuidance(MeanOfChannel(), scale=50.0, t_stopgrad=0), clip_denoised=False)
    value = MeanOfChannel()
    assert (value(guided, None) > value(plain, None) + 0.1).all()


def test_compose_nests_predictions_and_chains_the_other_hooks():
    class Add(Guidance):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def predict(self, model_fn, x, t, ctx):
            return model_fn(x, t) + self.k

        def guide_x0(self, x0, x_t, ctx):
            return x0 * 10 + self.k

        def guide_step(self, x, ctx):
            return x * 10 + self.k

    g = Compose(Add(1), Add(2))
    x = torch.zeros(1, 2, 1)
    assert g.predict(lambda x_, t_: x_, x, torch.zeros(1), None).unique().item() == 3
    assert g.guide_x0(torch.ones(1, 2, 1), x, None).unique().item() == (1 * 10 + 1) * 10 + 2
    assert g.guide_step(torch.ones(1, 2, 1), None).unique().item() == (1 * 10 + 1) * 10 + 2


def test_action_weight_scales_only_the_first_actions_loss():
    import numpy as np

    from diffplan.algorithms.diffuser import Diffuser
    from diffplan.data.normalizer import Normalizer

    norm = Normalizer.fit({"observations": np.array([[-1.0, -1.0], [1.0, 1.0]]), "actions": np.array([[-1.0], [1.0]])})
    batch = {"observations": torch.randn(4, 6, 2, generator=torch.Generator().manual_seed(0)),
             "actions": torch.randn(4, 6, 1, generator=torch.Generator().manual_seed(1))}
    losses = {}
    for weight in (1.0, 10.0):
        torch.manual_seed(0)
        model = Diffuser(norm, 6, denoiser_kwargs={"dim": 8, "dim_mults": (1, 2)}, value_head=False,
                         action_weight=weight)
        torch.manual_seed(1)
        losses[weight] = model.losses(batch)["diffusion"].item()
    torch.manual_seed(0)
    model = Diffuser(norm, 6, denoiser_kwargs={"dim": 8, "dim_mults": (1, 2)}, value_head=False)
    torch.manual_seed(1)
    x0 = model.normalize_batch(batch)
    t = model.sample_timesteps(x0)
    noise = torch.randn_like(x0)
    x_t = model.training_constraints(x0).apply(model.schedule.add_noise(x0, noise, t))
    error = (model.denoiser(x_t, t, None) - model.make_target(x0, noise, t)) ** 2
    free = (~model.training_constraints(x0).mask).float().sum()
    first_action = error[:, 0, model.layout.channels("actions")].sum()
    assert losses[10.0] - losses[1.0] == pytest.approx(9 * first_action.item() / free.item(), rel=1e-4)


@pytest.mark.parametrize("goal_pinning", [True, False])
def test_diffuser_goal_pinning_decides_whether_the_goal_is_pinned_in_training_planning_and_reloads(
        tiny_dataset, obs_batch, tmp_path, goal_pinning):
    from diffplan.algorithms.diffuser import Diffuser
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=16, stride=2, batch_size=16, progress=False)
    module = Diffuser(dm.normalizer, dm.horizon, denoiser_kwargs={"dim": 8, "dim_mults": [1, 2]}, value_head=False,
                      goal_dims=dm.task.goal_dims, goal_pinning=goal_pinning, num_train_timesteps=20)
    x0 = torch.randn(2, dm.horizon, module.layout.transition_dim)
    mask = module.training_constraints(x0).mask
    assert mask[:, 0, module.layout.channels("observations")].all()
    assert bool(mask[:, -1].any()) == goal_pinning
    planner = module.to_planner(dm.task, dm.stride, num_inference_steps=3)
    goal = torch.tensor([[0.0, 1.0]] * 3)
    plan = planner.plan(obs_batch, goal=goal, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(plan.observations[:, -1, :2], goal, atol=1e-5) == goal_pinning
    planner.save_pretrained(tmp_path / "planner")
    assert Diffuser.from_planner(tmp_path / "planner").goal_pinning == goal_pinning
