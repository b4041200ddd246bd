"""The Planner API: inputs, determinism, save/load identity, the control loop, and bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from diffplan import Planner
from diffplan.io import PlannerFolderError
from diffplan.planner import Plan, PlanContext


def test_plan_shapes_units_and_constraints(planner, obs_batch):
    goal = np.array([-1.0, 1.0])
    plan = planner.plan(obs_batch, goal=goal, generator=torch.Generator().manual_seed(0))
    assert plan.observations.shape[::2] == (3, 4) and plan.actions.shape[::2] == (3, 2)
    assert plan.observations.shape[1] == plan.actions.shape[1] > 2
    # start state and goal position are held exactly (in environment units)
    torch.testing.assert_close(plan.observations[:, 0], torch.as_tensor(obs_batch, dtype=torch.float32))
    torch.testing.assert_close(plan.observations[:, -1, :2], torch.tensor(goal, dtype=torch.float32).expand(3, 2))
    assert plan.values.shape == (3,)


def test_seeded_plans_reproduce_and_seeds_differ(any_planner, obs_batch):
    a = any_planner.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    b = any_planner.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    c = any_planner.plan(obs_batch, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.observations, b.observations, rtol=0, atol=0)
    assert not torch.equal(a.observations, c.observations)


def test_single_numpy_torch_and_dict_inputs_agree(planner, obs_batch):
    goal = np.array([-1.0, 1.0], dtype=np.float32)
    single = planner.plan(obs_batch[0], goal=goal, generator=torch.Generator().manual_seed(0))
    as_torch = planner.plan(torch.tensor(obs_batch[0]), goal=torch.tensor(goal), generator=torch.Generator().manual_seed(0))
    as_dict = planner.plan({"observation": obs_batch[0], "desired_goal": goal, "achieved_goal": obs_batch[0][:2]},
                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(single.observations, as_torch.observations)
    torch.testing.assert_close(single.observations, as_dict.observations)


def test_act_follows_the_plan_and_replans(planner, obs_batch):
    planner.replan_every = 0
    planner.reset(seed=3)
    first = planner.act(obs_batch)
    assert isinstance(first, np.ndarray) and first.shape == (3, 2) and np.abs(first).max() <= 1
    plan = planner.current_plan
    for _ in range(4):
        planner.act(obs_batch)
    assert planner.current_plan is plan  # open loop: one plan per episode
    planner.replan_every = 2
    planner.act(obs_batch)
    assert planner.current_plan is not plan
    single = planner.act(torch.tensor(obs_batch[0]))
    assert isinstance(single, torch.Tensor) and single.shape == (2,)


def test_diffused_action_source_returns_planned_actions(planner, obs_batch):
    planner.action_source = "diffused"
    planner.reset()
    action = planner.act(obs_batch)
    np.testing.assert_allclose(action, planner.current_plan.actions[:, 0].numpy())


@pytest.mark.parametrize("name", ["diffuser", "hierarchical", "diffusion_forcing"])
def test_action_ensemble_executes_the_mean_of_the_last_plans_predictions(name, request, obs_batch, tmp_path):
    request.getfixturevalue(f"{name}_planner").save_pretrained(tmp_path / "p")
    planner = Planner.from_pretrained(tmp_path / "p", action_source="diffused", replan_every=1, action_ensemble=3)
    planner.save_pretrained(tmp_path / "q")
    assert Planner.from_pretrained(tmp_path / "q").action_ensemble == 3
    planner.reset(seed=4)
    x = torch.as_tensor(obs_batch, dtype=torch.float32)
    plans, actions = [], []
    for _ in range(4):
        actions.append(torch.as_tensor(planner.act(obs_batch)))
        plans.append(planner.current_plan)
    ages = range(3)  # at step 3 the plans of steps 3, 2 and 1 predict it, 0, 1 and 2 steps after they were made
    expected = torch.stack([planner.action_from_plan(plans[3 - j], x, torch.full((3,), j)) for j in ages]).mean(0)
    torch.testing.assert_close(actions[3], expected)
    torch.testing.assert_close(actions[0], plans[0].actions[:, 0])  # the first step has one plan to go by
    assert not torch.allclose(actions[3], plans[3].actions[:, 0])
    planner.predict(obs_batch, episode_start=np.array([False, True, False]))  # row 1 starts over, alone
    restarted = torch.as_tensor(planner.predict(obs_batch, episode_start=np.array([False, True, False]))[0])
    torch.testing.assert_close(restarted[1], planner.current_plan.actions[1, 0])
    planner.action_source = "tracker"
    with pytest.raises(ValueError, match="action_ensemble"):
        planner.act(obs_batch)
    with pytest.raises(ValueError, match="action_ensemble"):
        Planner.from_pretrained(tmp_path / "p", action_ensemble=0)


def test_episodes_reproduce_after_reset_with_a_seed(any_planner, obs_batch):
    runs = []
    for _ in range(2):
        any_planner.reset(seed=11)
        runs.append(np.stack([any_planner.act(obs_batch) for _ in range(3)]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_predict_follows_the_sb3_protocol(any_planner, obs_batch):
    action, state = any_planner.predict(obs_batch, episode_start=np.array([True, True, True]))
    assert action.shape == (3, 2) and state is None


def test_save_load_identity(any_planner, obs_batch, tmp_path):
    any_planner.save_pretrained(tmp_path / "p", readme="# test\n")
    loaded = Planner.from_pretrained(tmp_path / "p")
    assert type(loaded) is type(any_planner) and loaded.config == any_planner.config
    for (k, v), (k2, v2) in zip(any_planner.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    a = any_planner.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    b = loaded.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.observations, b.observations, rtol=0, atol=0)
    files = {p.name for p in (tmp_path / "p").rglob("*")}
    assert {"planner.json", "weights.safetensors", "config.json", "README.md"} <= files
    assert not any(name.endswith((".pt", ".pkl", ".ckpt")) for name in files)


@pytest.mark.parametrize("name", ["diffuser", "decision_diffuser", "diffusion_forcing"])
def test_a_setting_changed_after_loading_takes_effect_and_is_saved(name, request, obs_batch, tmp_path):
    planner = request.getfixturevalue(f"{name}_planner")
    planner.save_pretrained(tmp_path / "before")
    steps = planner.num_inference_steps - 1
    planner.num_inference_steps = steps
    changed = planner.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    built = Planner.from_pretrained(tmp_path / "before", num_inference_steps=steps)
    expected = built.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(changed.observations, expected.observations, rtol=0, atol=0)
    planner.save_pretrained(tmp_path / "after")
    loaded = Planner.from_pretrained(tmp_path / "after")
    assert loaded.num_inference_steps == steps and loaded.config == built.config


def test_overrides_on_load(diffuser_planner, tmp_path):
    planner = diffuser_planner
    planner.save_pretrained(tmp_path / "p")
    loaded = Planner.from_pretrained(tmp_path / "p", num_inference_steps=2, replan_every=7)
    assert loaded.num_inference_steps == 2 and loaded.replan_every == 7 and len(loaded.timesteps) == 2
    with pytest.raises(ValueError, match="Unknown planner settings"):
        Planner.from_pretrained(tmp_path / "p", not_a_setting=1)


@pytest.mark.parametrize("obs, error, match", [
    (np.zeros(3), ValueError, r"shape \(4,\)"),
    (np.zeros((2, 5)), ValueError, r"shape \(4,\)"),
    (np.array(["a", "b", "c", "d"]), TypeError, "numeric"),
    (np.array([0.0, np.nan, 0.0, 0.0]), ValueError, "NaN"),
    ({"achieved_goal": np.zeros(2)}, ValueError, "expected 'observation'"),
])
def test_bad_observations_fail_clearly(any_planner, obs, error, match):
    with pytest.raises(error, match=match):
        any_planner.plan(obs)


@pytest.mark.parametrize("goal", [np.array([0.0, 0.0]), np.array([9.0, 9.0])])
def test_goal_outside_the_maze_fails(planner, goal):
    with pytest.raises(ValueError, match="wall or outside the maze"):
        planner.plan(np.array([1.0, -1.0, 0.0, 0.0]), goal=goal)


def test_a_bad_goal_fails_even_after_good_goals_were_checked(planner):
    """act checks a goal once while it stays the same; a new goal is checked again."""
    obs = np.array([1.0, -1.0, 0.0, 0.0])
    planner.reset(seed=0)
    good = np.array([1.0, 1.0])
    planner.act(obs, goal=good)
    planner.act(obs, goal=good)
    with pytest.raises(ValueError, match="wall or outside the maze"):
        planner.act(obs, goal=np.array([9.0, 9.0]))


def test_device_follows_the_weights_when_the_planner_moves(any_planner):
    assert any_planner.device == torch.device("cpu")
    moved = copy.deepcopy(any_planner).to("meta")  # a copy (fixtures share weights); meta: a device without data
    assert moved.device == torch.device("meta")


def test_planner_made_for_another_task_is_refused(any_planner, tmp_path):
    any_planner.save_pretrained(tmp_path / "p")
    with pytest.raises(PlannerFolderError, match="trained for task 'pointmaze-umaze', not 'pointmaze-large'"):
        Planner.from_pretrained(tmp_path / "p", task="pointmaze-large")


def test_a_given_task_card_replaces_the_folders_copy(any_planner, tmp_path):
    import dataclasses

    any_planner.save_pretrained(tmp_path / "p")
    newer = dataclasses.replace(any_planner.task, velocity_dims=(3, 2))  # same task, a card that says more
    assert Planner.from_pretrained(tmp_path / "p").task.velocity_dims == any_planner.task.velocity_dims
    assert Planner.from_pretrained(tmp_path / "p", task=newer).task.velocity_dims == (3, 2)


def test_corrupt_or_incomplete_folders_fail_clearly(any_planner, tmp_path):
    any_planner.save_pretrained(tmp_path / "p")
    weights = min((tmp_path / "p").rglob("weights.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(PlannerFolderError, match="truncated or corrupt"):
        Planner.from_pretrained(tmp_path / "p")
    weights.unlink()
    with pytest.raises(PlannerFolderError, match="incomplete"):
        Planner.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / "planner.json").write_text("{not json")
    with pytest.raises(PlannerFolderError, match="not valid JSON"):
        Planner.from_pretrained(tmp_path / "p")
    with pytest.raises(PlannerFolderError, match="does not exist"):
        Planner.from_pretrained(tmp_path / "nothing")


def test_planner_json_cannot_name_an_arbitrary_class(any_planner, tmp_path):
    any_planner.save_pretrained(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "planner.json").read_text())
    meta["_class_name"] = "os.system"
    (tmp_path / "p" / "planner.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="outside diffplan"):
        Planner.from_pretrained(tmp_path / "p")


def test_failed_save_keeps_the_previous_folder(any_planner, tmp_path, monkeypatch):
    any_planner.save_pretrained(tmp_path / "p")
    before = (tmp_path / "p" / "planner.json").read_text()
    import diffplan.planner as planner_module

    monkeypatch.setattr(planner_module, "save_module", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        any_planner.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "planner.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


def test_value_guidance_changes_the_plan_only_when_on(diffuser_planner, obs_batch):
    """(That guidance raises the value is tested on a toy value in test_diffusion.py; this tiny model's value head
    is barely trained.)"""
    planner = diffuser_planner
    gen = lambda: torch.Generator().manual_seed(0)
    planner.guidance_scale = 0.0
    plain = planner.plan(obs_batch, generator=gen())
    assert planner.value_guidance() is None
    planner.guidance_scale, planner.t_stopgrad = 10.0, 0
    guided = planner.plan(obs_batch, generator=gen())
    assert not torch.allclose(guided.observations, plain.observations)
    torch.testing.assert_close(guided.observations[:, 0], plain.observations[:, 0], rtol=0, atol=0)  # start held


def test_jit_planner_matches_eager(planner, obs_batch, tmp_path):
    """Also for the hierarchical planner, whose ``jit`` sets both levels' (it used to be an unknown setting)."""
    planner.save_pretrained(tmp_path / "p")
    jitted = Planner.from_pretrained(tmp_path / "p", jit=True)
    assert jitted.config["jit"] is True
    a = planner.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    b = jitted.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.observations, b.observations, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["diffuser", "decision_diffuser"])
def test_jit_planner_follows_gradient_guidance_like_the_eager_one(name, request, obs_batch):
    """DPS back-propagates through the denoiser: the traced copy must give the same input gradients."""
    eager = request.getfixturevalue(f"{name}_planner")
    spec = {"method": "dps", "rho": 1.0, "objective": {"type": "reach", "target": [3.0, 3.0], "dims": [0, 1], "at": "all"}}
    plain = eager.plan(obs_batch, generator=torch.Generator().manual_seed(0))
    guided = eager.plan(obs_batch, guidance=spec, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(plain.observations, guided.observations, atol=1e-3)  # the gradient moved the plan
    eager.jit = True
    traced = eager.plan(obs_batch, guidance=spec, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(traced.observations, guided.observations, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["diffuser", "decision_diffuser"])
def test_predict_replans_only_the_envs_whose_episode_started(name, request, obs_batch):
    planner = request.getfixturevalue(f"{name}_planner")
    planner.replan_every = 0  # open loop: only an episode start makes a new plan
    contexts = []
    sample = planner.sample
    planner.sample = lambda context, *a, **k: contexts.append(context) or sample(context, *a, **k)
    planner.predict(obs_batch, episode_start=np.ones(3, dtype=bool))
    before = planner.current_plan
    planner.predict(obs_batch, episode_start=np.array([False, True, False]))
    after = planner.current_plan
    assert len(contexts) == 2 and contexts[1].batch_size == 1
    for row in (0, 2):
        assert torch.equal(after.observations[row], before.observations[row])
        assert torch.equal(after.actions[row], before.actions[row])
    assert not torch.equal(after.observations[1], before.observations[1])
    if planner.history_length:  # the restarted env's history is dropped: nothing observed before this step
        assert not contexts[1].history_mask.any()
        planner.predict(obs_batch, episode_start=np.zeros(3, dtype=bool))
        assert len(contexts) == 2  # no episode start: no new plan


@pytest.mark.parametrize("row", [0, 2])
def test_extreme_observation_fails_naming_its_row(any_planner, obs_batch, row):
    """A finite but absurd observation (1e30: not in the task's units) overflows the denoiser; every planner
    reports the row instead of returning a NaN plan."""
    obs = obs_batch.copy()
    obs[row, 0] = 1e30
    with pytest.raises(ValueError, match=rf"batch row\(s\) \[{row}\] is NaN or inf.*1e\+30"):
        any_planner.plan(obs)


def test_bad_row_messages_stay_short_for_large_batches(diffuser_planner):
    obs = np.zeros((1000, 4))
    obs[[3, 500, 999]] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in batch row\(s\) \[3, 500, 999\]") as err:
        diffuser_planner.plan(obs)
    assert len(str(err.value)) < 300
    obs = np.full((1000, 4), np.nan)
    with pytest.raises(ValueError, match=r"row\(s\) \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\] \.\.\.") as err:
        diffuser_planner.plan(obs)
    assert len(str(err.value)) < 300
    nan_plan = Plan(observations=torch.full((1000, 5, 4), torch.nan), actions=torch.zeros(1000, 5, 2))
    with pytest.raises(ValueError, match=r"row\(s\) \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\] \.\.\. is NaN") as err:
        diffuser_planner._checked(nan_plan, PlanContext(obs=torch.full((1000, 4), 1e30)))
    assert len(str(err.value)) < 300 and "\n" not in str(err.value)


def test_repr_is_one_short_line_naming_class_task_and_changed_settings(any_planner, tmp_path):
    text = repr(any_planner)
    assert "\n" not in text and len(text) < 500
    assert text.startswith(type(any_planner).__name__ + "(") and "pointmaze-umaze" in text
    assert "seed=" not in text  # settings at their defaults are left out
    any_planner.save_pretrained(tmp_path / "p")
    assert "seed=7" in repr(Planner.from_pretrained(tmp_path / "p", seed=7))


def test_tracker_targets_each_envs_own_step_of_its_plan(umaze):
    """Envs at different steps of their plans (after a per-env reset) get the same action as alone."""
    from diffplan.action_sources import PDTracker
    from diffplan.planner import Plan

    gen = torch.Generator().manual_seed(0)
    plan = Plan(observations=torch.randn(3, 6, 4, generator=gen), actions=torch.zeros(3, 6, 2), stride=2)
    obs = torch.randn(3, 4, generator=gen)
    tracker = PDTracker([0, 1], [2, 3], kp=2.0, kd=0.5, lookahead=1.0)
    k = torch.tensor([0, 3, 9])
    mixed = tracker(plan, obs, k)
    for row in range(3):
        alone = tracker(plan.rows(torch.tensor([row])), obs[row:row + 1], k[row:row + 1])
        torch.testing.assert_close(mixed[row], alone[0], rtol=0, atol=1e-6)
    assert not torch.allclose(mixed[0], tracker(plan, obs, torch.tensor([3, 3, 3]))[0])
