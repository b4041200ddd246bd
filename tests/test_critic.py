"""The locomotion critic: TD and Monte-Carlo targets on a chain with known values, fit + export, the spec loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffplan.algorithms.critic import CriticTraining, Transitions
from diffplan.data.episodes import EpisodeArrays
from diffplan.data.normalizer import Normalizer
from diffplan.io import save_module
from diffplan.nn.critic import ActionCritic, StateCritic
from diffplan.objectives import Critic, objective_from_spec
from diffplan.tasks import load_task

GAMMA, PENALTY, N = 0.9, -10.0, 6  # a chain of N states, one step right per action, reward 1 per step


def chain(truncated: bool) -> EpisodeArrays:
    """One episode walking the whole chain into a terminal state (the last step earns 1 + PENALTY), and optionally
    one cut by a time limit after 3 steps (not terminal: its last state still has a future)."""
    lengths = [N, 4] if truncated else [N]
    states = np.concatenate([np.arange(n) for n in lengths])
    return EpisodeArrays(observations=np.eye(N, dtype=np.float32)[states], actions=np.zeros((len(states), 1), np.float32),
                         rewards=np.ones(len(states), np.float32), goals=np.zeros((len(states), 0), np.float32),
                         episode_starts=np.cumsum([0, *lengths[:-1]]).astype(np.int64),
                         episode_lengths=np.asarray(lengths, np.int64),
                         terminated=np.asarray([True, False][:len(lengths)]))


def true_values() -> np.ndarray:
    """(N - 1,) V of the non-terminal states: V(N-2) = 1 + PENALTY, V(k) = 1 + GAMMA V(k + 1)."""
    v = np.zeros(N - 1)
    v[-1] = 1.0 + PENALTY
    for k in range(N - 3, -1, -1):
        v[k] = 1.0 + GAMMA * v[k + 1]
    return v


def train(data: Transitions, target: str, steps: int = 600) -> CriticTraining:
    torch.manual_seed(0)
    module = CriticTraining(data.normalizer(), target=target, hidden=32, depth=2, learning_rate=1e-2, tau=0.1)
    return fit_full_batch(module, {k: torch.stack([data[i][k] for i in range(len(data))]) for k in data[0]}, steps)


def fit_full_batch(module: CriticTraining, batch: dict[str, torch.Tensor], steps: int) -> CriticTraining:
    opt = module.configure_optimizers()
    for _ in range(steps):
        opt.zero_grad()
        module.losses(batch)["loss"].backward()
        opt.step()
        module.update_target()
    return module


def values_of_states(module: CriticTraining) -> np.ndarray:
    with torch.no_grad():
        return module.critic.state_values(torch.eye(N)[: N - 1]).numpy()


def test_transitions_bootstrap_through_time_limits_but_not_through_terminal_states():
    data = Transitions(chain(truncated=True), GAMMA, PENALTY)
    assert len(data) == (N - 1) + 3 and data.num_terminal == 1
    np.testing.assert_allclose(data.bootstrap, [GAMMA] * (N - 2) + [0.0] + [GAMMA] * 3)
    np.testing.assert_allclose(data.rewards, [1.0] * (N - 2) + [1.0 + PENALTY] + [1.0] * 3)
    np.testing.assert_allclose(data.returns[: N - 1], true_values(), rtol=1e-5)
    item = data[N - 1]  # first step of the truncated episode
    assert item["observations"].argmax() == 0 and item["next_observations"].argmax() == 1


@pytest.mark.parametrize("target", ["td", "mc"])
def test_both_targets_learn_the_chain_values_from_complete_episodes(target):
    values = values_of_states(train(Transitions(chain(truncated=False), GAMMA, PENALTY), target))
    np.testing.assert_allclose(values, true_values(), atol=0.05)


def test_td_bootstraps_past_a_time_limit_where_mc_returns_stop_at_it():
    data = Transitions(chain(truncated=True), GAMMA, PENALTY)
    td, mc = values_of_states(train(data, "td")), values_of_states(train(data, "mc"))
    np.testing.assert_allclose(td, true_values(), atol=0.05)
    # MC regresses each state onto the mean of its recorded returns: the complete and the cut episode
    cut = [1 + GAMMA + GAMMA**2, 1 + GAMMA, 1.0]
    np.testing.assert_allclose(mc[:3], (true_values()[:3] + cut) / 2, atol=0.05)
    assert abs(mc[0] - td[0]) > 1.0


def test_module_rejects_bad_arguments():
    norm = Normalizer.fit({"observations": np.random.rand(10, 3).astype(np.float32)})  # min-max, no returns
    with pytest.raises(ValueError, match="TransitionDataModule"):
        CriticTraining(norm)
    good = Transitions(chain(truncated=False), GAMMA).normalizer()
    with pytest.raises(ValueError, match="target must be one of"):
        CriticTraining(good, target="q")
    with pytest.raises(ValueError, match="discount"):
        Transitions(chain(truncated=False), 0.0)


def test_fit_exports_a_critic_folder_that_the_objective_spec_loads(tiny_dataset, tmp_path):
    from diffplan.cli import main

    out = tmp_path / "run"
    main(["fit", "--model", "diffplan.algorithms.critic.CriticTraining", "--model.hidden", "16",
          "--data", "diffplan.algorithms.critic.TransitionDataModule", "--data.task", "pointmaze-umaze",
          "--data.batch_size", "16", "--data.progress", "false", "--trainer.max_steps", "3",
          "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_checkpointing", "false", "--trainer.default_root_dir", str(out),
          "--export", str(out / "critic")])
    record = json.loads((out / "critic" / "training.json").read_text())
    assert record["train_steps"] == 3 and record["target"] == "td" and record["discount"] == 0.997
    task = load_task("pointmaze-umaze")
    objective = objective_from_spec({"type": "critic", "path": str(out / "critic")}, task)
    assert isinstance(objective, Critic) and isinstance(objective.critic, StateCritic)
    obs = torch.randn(2, 5, objective.critic.obs_dim)
    values = objective({"observations": obs, "actions": torch.zeros(2, 5, 2)})
    torch.testing.assert_close(values, objective.critic.state_values(obs).sum(1))
    # the critic reads environment units: its input statistics are the data's, not the defaults
    assert not torch.equal(objective.critic.obs_mean, torch.zeros_like(objective.critic.obs_mean))
    # a planner folder carrying the critic as its critic/ component loads the same way
    (tmp_path / "planner").mkdir()
    (out / "critic").rename(tmp_path / "planner" / "critic")
    again = objective_from_spec({"type": "critic", "path": str(tmp_path / "planner")}, task)
    torch.testing.assert_close(again({"observations": obs, "actions": torch.zeros(2, 5, 2)}), values)


def test_a_critic_fit_resumes_from_its_checkpoint(tiny_dataset, tmp_path):
    """Lightning reads a model's arguments back from the checkpoint on resume, the ones fit links in included."""
    from diffplan.cli import main

    out = tmp_path / "run"
    args = ["fit", "--model", "diffplan.algorithms.critic.CriticTraining", "--model.hidden", "8",
            "--data", "diffplan.algorithms.critic.TransitionDataModule", "--data.task", "pointmaze-umaze",
            "--data.batch_size", "16", "--data.progress", "false", "--trainer.accelerator", "cpu",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(out)]
    main([*args, "--trainer.max_steps", "2"])
    (checkpoint,) = (out / "checkpoints").glob("*.ckpt")
    main([*args, "--trainer.max_steps", "4", "--ckpt_path", str(checkpoint), "--export", str(tmp_path / "critic")])
    assert json.loads((tmp_path / "critic" / "training.json").read_text())["train_steps"] == 4


def test_bad_critic_specs_fail_clearly(tmp_path):
    task = load_task("hopper-medium")
    with pytest.raises(ValueError, match="does not exist"):
        objective_from_spec({"type": "critic", "path": str(tmp_path / "nowhere")}, task)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no config.json"):
        objective_from_spec({"type": "critic", "path": str(tmp_path / "empty")}, task)
    save_module(Normalizer({"observations": 3}), tmp_path / "normalizer")
    with pytest.raises(ValueError, match="holds a Normalizer, not a critic"):
        objective_from_spec({"type": "critic", "path": str(tmp_path / "normalizer")}, task)
    with pytest.raises(ValueError, match="missing \\['path'\\]"):
        objective_from_spec({"type": "critic"}, task)
    save_module(StateCritic(4, hidden=8), tmp_path / "critic")
    objective = objective_from_spec({"type": "critic", "path": str(tmp_path / "critic")}, task)
    with pytest.raises(ValueError, match="4-dim states"):
        objective({"observations": torch.zeros(1, 3, 11), "actions": torch.zeros(1, 3, 3)})


def test_fit_refuses_planner_settings_for_a_critic(tiny_dataset, tmp_path, capsys):
    from diffplan.cli import main

    with pytest.raises(SystemExit) as info:
        main(["fit", "--model", "diffplan.algorithms.critic.CriticTraining", "--model.hidden", "8",
              "--data", "diffplan.algorithms.critic.TransitionDataModule", "--data.task", "pointmaze-umaze",
              "--data.progress", "false", "--trainer.max_steps", "1", "--trainer.logger", "false",
              "--trainer.default_root_dir", str(tmp_path), "--planner", '{"num_inference_steps": 3}'])
    assert info.value.code == 2 and "drop --planner" in capsys.readouterr().err


def one_step_bandit(episodes: int = 2) -> EpisodeArrays:
    """Episodes of one step from the same state: action +1 earns 1, action -1 earns 0, then a terminal state.
    So Q(s, +1) = 1, Q(s, -1) = 0, and the tau-expectile of Q over the data's actions (half of each) is tau."""
    actions = np.tile([[1.0], [0.0], [-1.0], [0.0]], (episodes // 2, 1)).astype(np.float32)
    rewards = np.tile([1.0, 1.0, 0.0, 0.0], episodes // 2).astype(np.float32)
    observations = np.tile([[1.0, 0.0], [0.0, 1.0]], (episodes, 1)).astype(np.float32)
    return EpisodeArrays(observations=observations, actions=actions, rewards=rewards,
                         goals=np.zeros((2 * episodes, 0), np.float32),
                         episode_starts=np.arange(0, 2 * episodes, 2), episode_lengths=np.full(episodes, 2),
                         terminated=np.ones(episodes, bool))


def train_iql(expectile: float, steps: int = 300) -> CriticTraining:
    data = Transitions(one_step_bandit(), 0.99)
    torch.manual_seed(0)
    module = CriticTraining(data.normalizer(), target="iql", hidden=32, depth=2, learning_rate=1e-2, tau=0.1,
                            expectile=expectile)
    return fit_full_batch(module, data.__getitems__(list(range(len(data)))), steps)


@pytest.mark.parametrize("expectile", [0.5, 0.9])
def test_iql_learns_q_of_each_action_and_the_expectile_of_v(expectile):
    module = train_iql(expectile)
    assert isinstance(module.critic, ActionCritic)
    state = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    with torch.no_grad():
        q = module.critic.action_values(state, torch.tensor([[1.0], [-1.0]]))
        v = module.expectile_value.state_values(state[:1])
    np.testing.assert_allclose(q.numpy(), [1.0, 0.0], atol=0.05)
    np.testing.assert_allclose(v.numpy(), [expectile], atol=0.05)  # 0.5: the data's mean; 0.9: towards the best


def test_an_action_critic_objective_scores_the_plans_first_step_and_select_keeps_the_best(tmp_path):
    module = train_iql(0.7)
    save_module(module.critic, tmp_path / "q")
    objective = objective_from_spec({"type": "critic", "path": str(tmp_path / "q")}, load_task("hopper-medium"))
    obs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).expand(3, 2, 2)
    first_actions = torch.tensor([[-1.0], [1.0], [0.0]])
    later = torch.tensor([[5.0], [-5.0], [0.0]])  # later actions do not count
    values = objective({"observations": obs, "actions": torch.stack([first_actions, later], 1)})
    torch.testing.assert_close(values, objective.critic.action_values(obs[:, 0], first_actions))
    assert values.argmax() == 1
    with pytest.raises(ValueError, match="1-dim actions"):
        objective({"observations": obs, "actions": torch.zeros(3, 2, 3)})


def test_batched_transitions_equal_the_items_one_by_one():
    data = Transitions(chain(truncated=True), GAMMA, PENALTY)
    batch = data.__getitems__([3, 0, 5])
    for row, i in enumerate([3, 0, 5]):
        for key, value in data[i].items():
            torch.testing.assert_close(batch[key][row], value)


def test_iql_needs_action_statistics_and_a_valid_expectile():
    obs = np.random.rand(10, 3).astype(np.float32)
    stats = Normalizer.fit({"observations": obs, "returns": obs[:, :1]}, {"observations": "gaussian",
                                                                            "returns": "gaussian"})
    with pytest.raises(ValueError, match="actions' statistics"):
        CriticTraining(stats, target="iql")
    with pytest.raises(ValueError, match="expectile must be in"):
        CriticTraining(Transitions(chain(truncated=False), GAMMA).normalizer(), target="iql", expectile=1.0)
