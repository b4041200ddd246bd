"""Decision Diffuser: classifier-free guidance identities, inverse dynamics, return conditioning, history."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from diffplan.algorithms.decision_diffuser import DecisionDiffuser, DecisionDiffuserPlanner
from diffplan.data.normalizer import Normalizer
from diffplan.guidance.cfg import ClassifierFreeGuidance
from diffplan.nn.inverse_dynamics import InverseDynamics
from diffplan.nn.unet import TemporalUnet
from diffplan.planner import PlanContext


@pytest.fixture()
def conditioned_net():
    torch.manual_seed(0)
    return TemporalUnet(3, 8, dim=8, dim_mults=(1, 2), cond_dim=4).eval()


def test_guidance_scale_zero_is_unconditional_and_one_is_conditional(conditioned_net):
    x, t = torch.randn(2, 8, 3), torch.tensor([5, 9])
    null, cond = torch.zeros(2, 4), torch.tensor([[0.5, 1.0, -0.3, 1.0]]).expand(2, 4)
    with torch.no_grad():
        uncond, conditional = conditioned_net(x, t, null), conditioned_net(x, t, cond)
        zero = ClassifierFreeGuidance(null, [cond], [0.0]).predict(conditioned_net, x, t, None)
        one = ClassifierFreeGuidance(null, [cond], [1.0]).predict(conditioned_net, x, t, None)
        strong = ClassifierFreeGuidance(null, [cond], [1.8]).predict(conditioned_net, x, t, None)
    torch.testing.assert_close(zero, uncond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one, conditional, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(strong, uncond + 1.8 * (conditional - uncond), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(uncond, conditional)


def test_composed_guidance_sums_each_conditions_difference(conditioned_net):
    x, t = torch.randn(1, 8, 3), torch.tensor([3])
    null, a, b = torch.zeros(1, 4), torch.tensor([[0.7, 1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, -0.5, 1.0]])
    with torch.no_grad():
        e0, ea, eb = (conditioned_net(x, t, c) for c in (null, a, b))
        composed = ClassifierFreeGuidance(null, [a, b], [1.2, 0.6]).predict(conditioned_net, x, t, None)
    torch.testing.assert_close(composed, e0 + 1.2 * (ea - e0) + 0.6 * (eb - e0), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="2 conditions but 1 guidance scales"):
        ClassifierFreeGuidance(null, [a, b], [1.0])


def test_inverse_dynamics_fits_a_linear_toy_system():
    torch.manual_seed(0)
    a_true = torch.rand(512, 2) * 2 - 1
    s = torch.randn(512, 3)
    mixing = torch.tensor([[0.3, -0.1, 0.2], [0.1, 0.4, -0.2]])
    s_next = s + a_true @ mixing
    model = InverseDynamics(3, 2, hidden=64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(400):
        opt.zero_grad()
        loss = ((model(s, s_next) - a_true) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02 * a_true.var().item()


def _toy_returns_model() -> tuple[DecisionDiffuser, Normalizer]:
    """1-D states moving up (return +1 per step) or down (-1); the return is the direction."""
    norm = Normalizer.fit({"observations": np.array([[-8.0], [8.0]]), "actions": np.array([[-1.0], [1.0]]),
                           "returns": np.array([[-8.0], [8.0]])})
    torch.manual_seed(0)
    model = DecisionDiffuser(norm, 8, denoiser_class="diffplan.nn.mlp.MLPDenoiser",
                             denoiser_kwargs={"hidden": 64, "depth": 2}, inverse_dynamics_kwargs={"hidden": 16},
                             num_train_timesteps=20, condition_dropout=0.25)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        direction = torch.randint(0, 2, (64, 1), generator=gen).float() * 2 - 1
        start = torch.rand(64, 1, generator=gen) * 4 - 2
        obs = (start + direction * torch.arange(8.0))[..., None]
        batch = {"observations": obs, "actions": direction[:, None].expand(64, 8, 1).clone(),
                 "returns": direction * (8.0 - torch.arange(8.0))}  # return-to-go of each plan point
        opt.zero_grad()
        model.losses(batch)["loss"].backward()
        opt.step()
    return model.eval(), norm


def test_conditioning_on_a_higher_return_raises_the_return(umaze):
    model, _ = _toy_returns_model()
    moves = {}
    for target in (-1.0, 1.0):
        planner = model.to_planner(umaze, 1, targets={"returns": target}, guidance_scale=1.5, num_inference_steps=10)
        planner.task = umaze
        with torch.no_grad():
            plan = planner.plan(torch.zeros(16, 1), generator=torch.Generator().manual_seed(0))
        moves[target] = (plan.observations[:, -1, 0] - plan.observations[:, 0, 0]).mean().item()
    assert moves[1.0] > 3.0 and moves[-1.0] < -3.0  # the planned return follows the target's sign


def test_composed_skill_conditions_each_steer_their_own_feature(umaze):
    """2-D states drifting from 0 with independent signs; obs_mean:0 and obs_mean:1 condition each sign."""
    norm = Normalizer.fit({"observations": np.array([[-7.0, -7.0], [7.0, 7.0]]),
                           "actions": np.array([[-1.0, -1.0], [1.0, 1.0]])})
    torch.manual_seed(0)
    model = DecisionDiffuser(norm, 8, conditions=["obs_mean:0", "obs_mean:1"],
                             denoiser_class="diffplan.nn.mlp.MLPDenoiser", denoiser_kwargs={"hidden": 64, "depth": 2},
                             inverse_dynamics_kwargs={"hidden": 16}, num_train_timesteps=20, condition_dropout=0.25)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(400):
        direction = torch.randint(0, 2, (64, 2), generator=gen).float() * 2 - 1
        obs = direction[:, None, :] * torch.arange(8.0)[None, :, None]
        batch = {"observations": obs, "actions": direction[:, None].expand(64, 8, 2).clone()}
        opt.zero_grad()
        model.losses(batch)["loss"].backward()
        opt.step()
    model.eval()

    def final_signs(targets: dict[str, float]) -> torch.Tensor:
        planner = model.to_planner(umaze, 1, targets=targets, compose=True, guidance_scale=1.5, num_inference_steps=10)
        planner.task = umaze
        plan = planner.plan(torch.zeros(32, 2), generator=torch.Generator().manual_seed(0))
        return torch.sign(plan.observations[:, -1]).mean(0)  # (2,) share of plans ending on the + side

    both = final_signs({"obs_mean:0": 0.5, "obs_mean:1": -0.5})
    assert both[0] > 0.7 and both[1] < -0.7  # composed: each condition holds its own feature
    flipped = final_signs({"obs_mean:0": -0.5, "obs_mean:1": 0.5})
    assert flipped[0] < -0.7 and flipped[1] > 0.7
    only_x = final_signs({"obs_mean:0": 0.5})
    assert only_x[0] > 0.7 and abs(only_x[1]) < 0.6  # the other feature stays free


def test_history_is_inpainted_and_changes_the_plan(decision_diffuser_planner, obs_batch):
    planner = decision_diffuser_planner
    x = torch.as_tensor(obs_batch, dtype=torch.float32)
    still = x[:, None].expand(3, 2, 4)
    moving = still + torch.tensor([0.3, 0.0, 0.0, 0.0]) * torch.tensor([-2.0, -1.0])[None, :, None]
    a = planner.plan(x, history=still, generator=torch.Generator().manual_seed(0))
    b = planner.plan(x, history=moving, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.observations[:, 0], x)  # the current state is held
    assert not torch.allclose(a.observations, b.observations)  # the past changes the future
    planner.reset()
    for k in range(4):
        planner.act(obs_batch + 0.01 * k)
    # act() keeps the last K observed states per env, newest last
    expected = torch.stack([x + 0.01 * k for k in range(4 - planner.history - 1, 4)], dim=1)
    torch.testing.assert_close(planner._observed, expected)


def test_unknown_condition_and_wrong_target_shape_fail_clearly(tiny_decision_diffuser, umaze):
    module, dm = tiny_decision_diffuser
    with pytest.raises(ValueError, match=r"Unknown condition\(s\) \['skill'\]"):
        DecisionDiffuser(dm.normalizer, 8, conditions=["returns", "skill"])
    with pytest.raises(ValueError, match=r"expected 'obs_mean:<d>' with 0 <= d < 4"):
        DecisionDiffuser(dm.normalizer, 8, conditions=["returns", "obs_mean:4"])
    with pytest.raises(ValueError, match="name one condition twice"):
        DecisionDiffuser(dm.normalizer, 8, conditions=["obs_mean:1", "obs_mean:1"])
    with pytest.raises(ValueError, match="Target 'returns' must have 1 value"):
        module.to_planner(umaze, 1, targets={"returns": [0.5, 0.5]})
    with pytest.raises(ValueError, match=r"Targets for \['speed'\]"):
        module.to_planner(umaze, 1, targets={"speed": 1.0})
    with pytest.raises(ValueError, match="stride 1"):
        module.to_planner(umaze, 2)
    assert isinstance(module.to_planner(umaze, 1), DecisionDiffuserPlanner)


def test_guidance_scale_set_after_loading_changes_the_plans_and_is_saved(tiny_decision_diffuser, obs_batch, tmp_path):
    module, dm = tiny_decision_diffuser
    planner = module.to_planner(dm.task, 1, num_inference_steps=4)
    built = module.to_planner(dm.task, 1, num_inference_steps=4, guidance_scale=3.0)
    planner.guidance_scale = 3.0
    expected = built.plan(obs_batch, generator=torch.Generator().manual_seed(2)).observations
    torch.testing.assert_close(planner.plan(obs_batch, generator=torch.Generator().manual_seed(2)).observations,
                               expected)
    planner.save_pretrained(tmp_path / "dd")
    loaded = DecisionDiffuserPlanner.from_pretrained(tmp_path / "dd")
    assert loaded.guidance_scale == 3.0
    torch.testing.assert_close(loaded.plan(obs_batch, generator=torch.Generator().manual_seed(2)).observations,
                               expected)
    with pytest.raises(ValueError, match="no target"):
        planner.guidance_scale = {"obs_mean:0": 1.0}


def test_transformer_denoiser_trains_through_the_same_objective(tiny_dataset, loss_drop):
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=8, stride=1, batch_size=32, progress=False)
    torch.manual_seed(0)
    model = DecisionDiffuser(dm.normalizer, 8, denoiser_class="diffplan.nn.transformer.TransformerDenoiser",
                             denoiser_kwargs={"d_model": 32, "depth": 2, "heads": 2, "emb_dim": 16},
                             inverse_dynamics_kwargs={"hidden": 16}, num_train_timesteps=20)
    assert loss_drop(model, next(iter(dm.train_dataloader())), steps=60, lr=2e-3, key="diffusion") < 0.7


def test_warm_start_replans_from_the_previous_plan_with_fewer_denoiser_calls(tiny_decision_diffuser, obs_batch):
    module, dm = tiny_decision_diffuser
    cold = module.to_planner(dm.task, 1, num_inference_steps=4)
    warm = module.to_planner(dm.task, 1, num_inference_steps=4, warm_start=3)
    inputs: list[torch.Tensor] = []
    hook = warm.denoiser.register_forward_hook(lambda m, args, out: inputs.append(args[0][: len(obs_batch)]))
    try:
        # plan() outside act() is always cold: the same plan as without warm starts
        g = torch.Generator().manual_seed(0)
        torch.testing.assert_close(warm.plan(obs_batch, generator=g).observations,
                                   cold.plan(obs_batch, generator=torch.Generator().manual_seed(0)).observations)
        warm.reset(seed=0)
        warm.act(obs_batch)
        first = warm.current_plan.normalized.clone()
        inputs.clear()
        warm.act(obs_batch + 0.01)  # a replan one step later
    finally:
        hook.remove()
    assert len(inputs) == 1  # 4 DDIM steps less the 3 skipped
    # the chain started near the previous plan shifted by one step (little noise is left at the 4th step)
    start, shifted = inputs[0], torch.cat([first[:, 1:], first[:, -1:]], dim=1)
    assert (start - shifted).abs().mean() < 0.5 * (torch.randn_like(start) - shifted).abs().mean()
    with pytest.raises(ValueError, match="warm_start must be in"):
        module.to_planner(dm.task, 1, num_inference_steps=4, warm_start=4)


def test_jit_planner_plans_like_the_eager_one(tiny_decision_diffuser, obs_batch):
    module, dm = tiny_decision_diffuser
    eager = module.to_planner(dm.task, 1, num_inference_steps=4)
    traced = module.to_planner(dm.task, 1, num_inference_steps=4, jit=True)
    a = eager.plan(obs_batch, generator=torch.Generator().manual_seed(1))
    b = traced.plan(obs_batch, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.observations, b.observations, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.actions, b.actions, atol=1e-4, rtol=1e-4)


def test_return_condition_is_the_current_states_return_to_go_not_the_windows_first(tiny_decision_diffuser):
    """With history K, plan point K is the current state: DD conditions on its return-to-go."""
    from diffplan.algorithms.conditions import condition_value

    module, dm = tiny_decision_diffuser
    history = module.history
    assert history > 0
    w = dm.windows
    i = next(i for i in range(len(w)) if w.starts[i] + history <= w.ends[i] and w.returns_to_go[w.starts[i]]
             != w.returns_to_go[w.starts[i] + history])
    batch = {k: v[None] for k, v in w[i].items()}
    value = condition_value("returns", batch, module.normalizer, history)
    current = torch.tensor([[w.returns_to_go[w.starts[i] + history]]])
    torch.testing.assert_close(value, module.normalizer.normalize("returns", current))


def test_every_candidate_of_a_warm_started_replan_starts_from_its_rows_previous_plan(tiny_decision_diffuser,
                                                                                     obs_batch):
    module, dm = tiny_decision_diffuser
    warm = module.to_planner(dm.task, 1, num_inference_steps=4, warm_start=3)
    warm.reset(seed=0)
    warm.act(obs_batch)
    previous = warm.current_plan
    context = PlanContext(obs=torch.as_tensor(obs_batch + 0.01, dtype=torch.float32), previous=previous,
                          since_previous=torch.ones(3, dtype=torch.long))
    shifted = torch.cat([previous.normalized[:, 1:], previous.normalized[:, -1:]], dim=1).repeat_interleave(2, 0)
    candidates = warm.sample(context, 2, None, torch.Generator().manual_seed(1))  # e.g. sample-and-select's
    cold = warm.sample(replace(context, previous=None), 2, None, torch.Generator().manual_seed(1))
    assert (candidates.normalized - shifted).abs().mean() < 0.5 * (cold.normalized - shifted).abs().mean()
