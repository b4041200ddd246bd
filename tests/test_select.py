"""Sample-and-select, composition with TFG, the guidance JSON form through planner folders, and one set of
guidance entry points for every planner."""

from __future__ import annotations

import pytest
import torch

from diffplan.guidance.base import Compose
from diffplan.guidance.select import Average, Select
from diffplan.guidance.spec import guidance_from_spec
from diffplan.guidance.tfg import TFG
from diffplan.objectives import Reach
from diffplan.planner import PlanContext

REACH = {"type": "reach", "target": [3.0, 1.0]}
TFG_SPEC = {"method": "tfg", "rho": 0.5, "mu": 0.5, "objective": REACH}
SELECT_SPEC = {"method": "select", "n": 4, "objective": REACH, "guidance": TFG_SPEC}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def candidates(planner, obs_batch, n: int, guidance=None, seed: int = 0):
    context = PlanContext(obs=torch.as_tensor(obs_batch, dtype=torch.float32))
    return planner.sample(context, n, guidance, gen(seed))


def test_select_returns_the_best_of_its_candidates(diffuser_planner, obs_batch):
    reach = Reach([3.0, 1.0], [0, 1])
    pool = candidates(diffuser_planner, obs_batch, 4)
    scores = reach({"observations": pool.observations}).view(3, 4)
    best = diffuser_planner.plan(obs_batch, guidance=Select(reach, n=4), generator=gen())
    expected = pool.observations.view(3, 4, *pool.observations.shape[1:])[torch.arange(3), scores.argmax(1)]
    torch.testing.assert_close(best.observations, expected, rtol=0, atol=0)
    assert best.observations.shape[0] == 3
    assert (reach({"observations": best.observations}) >= scores.max(1).values - 1e-6).all()
    assert not torch.equal(scores.argmax(1), scores.argmin(1))  # the candidates differ: the choice matters


def test_select_composes_with_tfg_either_way(diffuser_planner, obs_batch):
    reach = Reach([3.0, 1.0], [0, 1])
    tfg = TFG(reach, rho=0.5, mu=0.5)
    pool = candidates(diffuser_planner, obs_batch, 4, tfg)
    scores = reach({"observations": pool.observations}).view(3, 4)
    expected = pool.observations.view(3, 4, *pool.observations.shape[1:])[torch.arange(3), scores.argmax(1)]
    inner = diffuser_planner.plan(obs_batch, guidance=Select(reach, n=4, guidance=tfg), generator=gen())
    composed = diffuser_planner.plan(obs_batch, guidance=Compose(Select(reach, n=4), tfg), generator=gen())
    torch.testing.assert_close(inner.observations, expected, rtol=0, atol=0)
    torch.testing.assert_close(composed.observations, expected, rtol=0, atol=0)
    plain = candidates(diffuser_planner, obs_batch, 4)
    assert not torch.equal(pool.observations, plain.observations)  # the candidates were guided


def test_average_returns_the_mean_of_its_candidates(diffuser_planner, obs_batch):
    pool = candidates(diffuser_planner, obs_batch, 4)
    mean = diffuser_planner.plan(obs_batch, guidance={"method": "average", "n": 4}, generator=gen())
    for field in ("observations", "actions"):
        drawn = getattr(pool, field)
        expected = drawn.view(3, 4, *drawn.shape[1:]).mean(1)
        torch.testing.assert_close(getattr(mean, field), expected)
    assert pool.actions.view(3, 4, -1).std(1).mean() > 0.01  # the candidates differ: the mean is not one of them
    tfg = TFG(Reach([3.0, 1.0], [0, 1]), rho=0.5, mu=0.5)
    guided = diffuser_planner.plan(obs_batch, guidance=Average(4, guidance=tfg), generator=gen())
    expected = candidates(diffuser_planner, obs_batch, 4, tfg).observations.view(3, 4, -1, 4).mean(1)
    torch.testing.assert_close(guided.observations, expected)
    composed = diffuser_planner.plan(obs_batch, guidance=Compose(Average(4), tfg), generator=gen())
    torch.testing.assert_close(composed.observations, expected)


def test_average_with_a_radius_averages_only_the_rows_near_their_goal(diffuser_planner, obs_batch):
    goal = torch.tensor([[1.0, -1.2]]).expand(3, 2)  # row 0's agent is 0.2 m from it, the others over 0.5 m
    context = PlanContext(obs=torch.as_tensor(obs_batch, dtype=torch.float32), goal=goal)
    pool = diffuser_planner.sample(context, 4, None, gen()).observations.view(3, 4, -1, 4)
    plan = diffuser_planner.plan(obs_batch, goal=goal, guidance={"method": "average", "n": 4, "radius": 0.5},
                                 generator=gen())
    torch.testing.assert_close(plan.observations[0], pool[0].mean(0))
    torch.testing.assert_close(plan.observations[1:], pool[1:, 0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs a goal"):
        diffuser_planner.plan(obs_batch, guidance={"method": "average", "n": 2, "radius": 0.5})


def test_select_passed_to_the_sampling_loop_fails_instead_of_being_ignored(diffuser_planner, obs_batch):
    context = PlanContext(obs=torch.as_tensor(obs_batch, dtype=torch.float32))
    with pytest.raises(TypeError, match="no per-step hook"):
        diffuser_planner.sample(context, 1, Select(Reach([3.0, 1.0], [0, 1])), gen())
    with pytest.raises(ValueError, match="cannot itself select"):
        Select(Reach([3.0, 1.0], [0, 1]), guidance=Select(Reach([3.0, 1.0], [0, 1])))


def test_guidance_spec_round_trips_through_a_planner_folder(diffuser_planner, obs_batch, tmp_path):
    planner = diffuser_planner
    planner.save_pretrained(tmp_path / "given", guidance=SELECT_SPEC)
    planner.guidance = guidance_from_spec(SELECT_SPEC, planner)
    planner.save_pretrained(tmp_path / "own")
    for folder in ("given", "own"):
        assert type(planner).read_metadata(tmp_path / folder)["guidance"] == SELECT_SPEC
        loaded = type(planner).from_pretrained(tmp_path / folder)
        assert isinstance(loaded.guidance, Select) and isinstance(loaded.guidance.guidance, TFG)
        assert loaded.guidance.n == 4 and loaded.guidance.guidance.rho == 0.5
        ours = planner.plan(obs_batch, generator=gen(2))
        theirs = loaded.plan(obs_batch, generator=gen(2))
        torch.testing.assert_close(theirs.observations, ours.observations, rtol=0, atol=0)


def test_a_folder_saved_with_critic_selection_carries_its_critic(diffuser_planner, obs_batch, tmp_path,
                                                                   monkeypatch):
    from diffplan.io import save_module
    from diffplan.nn.critic import ActionCritic

    planner = diffuser_planner
    torch.manual_seed(0)
    act_dim = planner.plan(obs_batch, generator=gen(0)).actions.shape[-1]
    save_module(ActionCritic(planner.obs_dim, act_dim, hidden=8), tmp_path / "runs" / "q")
    spec = {"method": "select", "n": 4, "objective": {"type": "critic", "path": str(tmp_path / "runs" / "q")}}
    planner.guidance = guidance_from_spec(spec, planner)
    ours = planner.plan(obs_batch, generator=gen(2))
    planner.save_pretrained(tmp_path / "steered")
    assert type(planner).read_metadata(tmp_path / "steered")["guidance"]["objective"]["path"] == "critic"
    assert (tmp_path / "steered" / "critic" / "config.json").exists()
    (tmp_path / "runs" / "q" / "config.json").unlink()  # the original is gone: the folder must not need it
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = type(planner).from_pretrained(tmp_path / "steered")
    assert isinstance(loaded.guidance, Select) and loaded.guidance.objective.critic.act_dim == act_dim
    torch.testing.assert_close(loaded.plan(obs_batch, generator=gen(2)).actions, ours.actions, rtol=0, atol=0)
    loaded.save_pretrained(tmp_path / "again")  # a re-save copies the critic out of the loaded folder
    again = type(planner).from_pretrained(tmp_path / "again")
    torch.testing.assert_close(again.plan(obs_batch, generator=gen(2)).actions, ours.actions, rtol=0, atol=0)


@pytest.mark.parametrize("spec", [TFG_SPEC, SELECT_SPEC, {"method": "mpgd", "mu": 0.5, "objective": REACH}],
                         ids=["tfg", "select", "mpgd"])
def test_every_planner_takes_guidance_specs_through_plan_act_and_from_pretrained(any_planner, obs_batch, tmp_path,
                                                                                 spec):
    planner = any_planner
    plain = planner.plan(obs_batch, generator=gen(3))
    steered = planner.plan(obs_batch, guidance=spec, generator=gen(3))
    assert not torch.equal(steered.observations, plain.observations)
    assert steered.observations.shape == plain.observations.shape
    built = planner.plan(obs_batch, guidance=guidance_from_spec(spec, planner), generator=gen(3))
    torch.testing.assert_close(built.observations, steered.observations, rtol=0, atol=0)

    def episode_actions(p):
        p.reset(seed=4)
        return [torch.as_tensor(p.act(obs_batch)) for _ in range(2)]

    planner.guidance = spec
    acting = episode_actions(planner)
    steered_plan = planner.current_plan.observations
    planner.guidance = None
    episode_actions(planner)
    # act plans with the guidance (the first actions themselves may not move, e.g. DF's pinned first token)
    assert not torch.equal(steered_plan, planner.current_plan.observations)
    planner.save_pretrained(tmp_path / "p")
    loaded = type(planner).from_pretrained(tmp_path / "p", guidance=spec)
    assert loaded.guidance.spec == spec
    for a, b in zip(acting, episode_actions(loaded)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_planner_without_goal_input_is_steered_to_each_episodes_own_goal(tiny_module, obs_batch):
    module, dm = tiny_module
    planner = module.to_planner(dm.task, dm.stride, num_inference_steps=5, goal_dims=[])
    goals = torch.as_tensor(obs_batch[[2, 0, 1], :2], dtype=torch.float32)  # each row aims at another row's start
    ignored = planner.plan(obs_batch, goal=goals, generator=gen(5))
    torch.testing.assert_close(ignored.observations, planner.plan(obs_batch, generator=gen(5)).observations,
                               rtol=0, atol=0)  # no goal pinning: the goal alone changes nothing
    to_goal = {"type": "reach", "target": "goal"}

    def final_distance(plan):
        return (plan.observations[:, -1, :2] - goals).norm(dim=1)

    steered = planner.plan(obs_batch, goal=goals, generator=gen(5),
                           guidance={"method": "tfg", "rho": 0.0, "mu": 0.3, "objective": to_goal})
    assert (final_distance(steered) < final_distance(ignored)).all()
    for row in range(3):  # each row is steered exactly as a fixed target at its own goal would steer it
        fixed = {"method": "tfg", "rho": 0.0, "mu": 0.3, "objective": {"type": "reach", "target": goals[row].tolist()}}
        torch.testing.assert_close(planner.plan(obs_batch, generator=gen(5), guidance=fixed).observations[row],
                                   steered.observations[row])
    pool = planner.sample(PlanContext(obs=torch.as_tensor(obs_batch, dtype=torch.float32), goal=goals), 4,
                          None, gen(6))
    pool_distance = (pool.observations[:, -1, :2] - goals.repeat_interleave(4, 0)).norm(dim=1).view(3, 4)
    chosen = planner.plan(obs_batch, goal=goals, generator=gen(6),
                          guidance={"method": "select", "n": 4, "objective": to_goal})
    torch.testing.assert_close(final_distance(chosen), pool_distance.min(1).values)
    with pytest.raises(ValueError, match="this plan has none"):
        planner.plan(obs_batch, guidance={"method": "select", "n": 4, "objective": to_goal})


@pytest.mark.parametrize("spec, match", [
    ({"method": "tfg"}, "the objective is missing"),
    ({"method": "dps", "mu": 1.0, "objective": REACH}, "unknown \\['mu'\\]"),
    ({"method": "select", "k": 3, "objective": REACH}, "unknown \\['k'\\]"),
    ({"method": "select", "n": 0, "objective": REACH}, "'n' must be an integer >= 1"),
    ({"method": "average", "k": 3}, "unknown \\['k'\\]"),
    ({"method": "average", "n": 0}, "average: 'n' must be an integer >= 1"),
    ({"method": "average", "radius": -1.0}, "'radius' must be > 0 metres"),
    ({"method": "tfg", "objective": {"type": "reach"}}, "missing \\['target'\\]"),
])
def test_bad_guidance_specs_fail_in_one_line(diffuser_planner, obs_batch, spec, match):
    with pytest.raises(ValueError, match=match) as err:
        diffuser_planner.plan(obs_batch, guidance=spec)
    assert "\n" not in str(err.value)
