"""Adjoint Matching: the DDPM form against closed forms, the toy tilt, memorylessness, masking, export."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.sampler import denoise
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.finetune.adjoint_matching import (
    AdjointMatching,
    adjoint_matching_loss,
    lean_adjoint,
    loss_steps,
    matching_loss,
    reward_gradient,
    step_mean,
)
from diffplan.finetune.toy import GaussianDenoiser, ResidualDenoiser, chain_moments, fit_toy, linear_reward
from diffplan.planner import Planner

MEAN, STD, A = [0.3, -0.2], [0.5, 0.8], [1.0, -0.5]
PREDICTIONS = ["sample", "epsilon"]


def _toy(prediction_type: str, steps: int = 20) -> tuple[NoiseSchedule, torch.Tensor, GaussianDenoiser]:
    schedule = NoiseSchedule(20, "squaredcos_cap_v2", prediction_type)
    return schedule, schedule.sampling_timesteps(steps), GaussianDenoiser(MEAN, STD, schedule)


def _chain(model, schedule, timesteps, b=8, h=1, constraints=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, h, 2, generator=g)
    return denoise(model, schedule, noise, timesteps, constraints=constraints, eta=1.0, clip_denoised=False,
                   generator=g, return_trajectory=True)[1]


@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_step_mean_difference_matches_the_derived_closed_forms(prediction_type):
    schedule, timesteps, _ = _toy(prediction_type)
    x = torch.randn(4, 3, 2)
    out_ft, out_base = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    t, t_prev = torch.full((4,), int(timesteps[5])), torch.full((4,), int(timesteps[6]))
    mean_ft, std = step_mean(lambda *_: out_ft, schedule, x, t, t_prev, clip_denoised=False)
    mean_base, _ = step_mean(lambda *_: out_base, schedule, x, t, t_prev, clip_denoised=False)
    a_t, a_prev = schedule.alpha_bar(t, x), schedule.alpha_bar(t_prev, x)
    alpha = a_t / a_prev
    beta = 1 - alpha
    if prediction_type == "sample":
        coefficient = a_prev.sqrt() * beta / (1 - a_t)
    else:
        coefficient = -beta / (alpha.sqrt() * (1 - a_t).sqrt())
    torch.testing.assert_close(mean_ft - mean_base, coefficient * (out_ft - out_base))
    torch.testing.assert_close(std**2, beta * (1 - a_prev) / (1 - a_t))


@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_lean_adjoint_of_the_gaussian_base_is_the_analytic_product(prediction_type):
    schedule, timesteps, base = _toy(prediction_type)
    trajectory = _chain(base, schedule, timesteps)
    lam, a = 0.7, torch.tensor(A)
    terminal = -lam * reward_gradient(linear_reward(A), trajectory.samples[-1])
    adjoint = lean_adjoint(base, schedule, trajectory, terminal, torch.ones_like(terminal), clip_denoised=False)
    expected = -lam * a
    for i in range(len(timesteps) - 1, -1, -1):  # the step mean is affine: its Jacobian is its gain per channel
        t, t_prev = trajectory.timesteps[i][:1], trajectory.timesteps[i + 1][:1]
        mu0, _ = step_mean(base, schedule, torch.zeros(1, 1, 2), t, t_prev, False)
        mu1, _ = step_mean(base, schedule, torch.ones(1, 1, 2), t, t_prev, False)
        expected = expected * (mu1 - mu0).reshape(2)
        torch.testing.assert_close(adjoint[i], expected.expand_as(adjoint[i]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_one_gradient_step_moves_the_mean_along_the_reward(prediction_type):
    schedule, timesteps, base = _toy(prediction_type)
    model = ResidualDenoiser(base, 20, 2)
    before, _ = chain_moments(model, schedule, timesteps, 2)
    fit_toy(model, schedule, timesteps, linear_reward(A), lam=0.5, steps=1, batch_size=64, lr=1e-3)
    after, _ = chain_moments(model, schedule, timesteps, 2)
    assert torch.equal(torch.sign(after - before), torch.sign(torch.tensor(A)))


@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_zero_lambda_gives_zero_loss_for_the_base(prediction_type):
    schedule, timesteps, base = _toy(prediction_type)
    model = ResidualDenoiser(base, 20, 2)
    loss, _ = adjoint_matching_loss(model, base, schedule, torch.randn(16, 1, 2), timesteps, linear_reward(A), 0.0)
    assert loss.item() == 0.0
    loss, _ = adjoint_matching_loss(model, base, schedule, torch.randn(16, 1, 2), timesteps, linear_reward(A), 0.5)
    assert loss.item() > 0


def test_pinned_entries_get_zero_adjoint_and_no_loss():
    schedule, timesteps, base = _toy("sample", steps=10)
    pinned = torch.zeros(8, 3, 2, dtype=torch.bool)
    pinned[:, 0] = True
    constraints = Inpaint(pinned, torch.full((8, 3, 2), 0.25))
    trajectory = _chain(base, schedule, timesteps, h=3, constraints=constraints)
    free = (~pinned).float()
    terminal = -reward_gradient(linear_reward(A), trajectory.samples[-1])
    assert bool((terminal[:, 0] != 0).all())  # the reward does depend on the pinned point
    adjoint = lean_adjoint(base, schedule, trajectory, terminal, free, clip_denoised=False)
    assert all(bool((a[:, 0] == 0).all()) for a in adjoint)
    steps = loss_steps(trajectory.timesteps, 3, 3)

    def shifted(x, t):  # a different prediction on the pinned plan point only
        return base(x, t) + 5.0 * pinned.float().repeat(x.shape[0] // 8, 1, 1)

    same = matching_loss(base, base, schedule, trajectory, adjoint, steps, free, False)
    moved = matching_loss(shifted, base, schedule, trajectory, adjoint, steps, free, False)
    torch.testing.assert_close(moved, same)


def test_loss_steps_are_the_last_k_and_a_random_subset_of_the_stochastic_rest():
    levels = torch.cat([torch.arange(19, -1, -1), torch.tensor([-1])])[:, None]  # 20 steps, the last one to clean
    steps = loss_steps(levels, last_k=4, random_k=3, generator=torch.Generator().manual_seed(0))
    assert steps[-4:] == [15, 16, 17, 18]  # step 19 ends at clean data (std 0): never chosen
    assert len(steps) == 7 and len(set(steps)) == 7 and all(s < 15 for s in steps[:3])


@pytest.mark.slow
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_toy_tilt_reaches_the_analytic_tilted_gaussian(prediction_type):
    schedule, timesteps, base = _toy(prediction_type)
    model = ResidualDenoiser(base, 20, 2)
    lam = 0.5
    mean, var = chain_moments(base, schedule, timesteps, 2)
    fit_toy(model, schedule, timesteps, linear_reward(A), lam, steps=150, batch_size=256)
    tuned_mean, tuned_var = chain_moments(model, schedule, timesteps, 2)
    torch.testing.assert_close(tuned_mean, mean + lam * var * torch.tensor(A), atol=0.01, rtol=0)
    torch.testing.assert_close(tuned_var, var, atol=0.01, rtol=0.02)


# -- the LightningModule on a planner ---------------------------------------------------------------------------
REACH = {"type": "reach", "target": [3.0, 1.0]}


def _contexts(n: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    obs = torch.cat([torch.rand(n, 2, generator=g) * 2 + 0.5, torch.zeros(n, 2)], 1)
    return DataLoader([{"observations": o} for o in obs], batch_size=4)


def _fit(module: AdjointMatching, steps: int = 2) -> AdjointMatching:
    L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, _contexts())
    return module


def test_ddim_eta_zero_is_refused(diffuser_planner):
    with pytest.raises(ValueError, match="memoryless"):
        AdjointMatching(diffuser_planner, REACH, eta=0.0)


def test_a_planner_that_is_not_one_chain_is_refused(hierarchical_planner):
    with pytest.raises(ValueError, match="high/"):
        AdjointMatching(hierarchical_planner, REACH)


def test_zero_lambda_keeps_the_planner_at_its_base(diffuser_planner):
    module = AdjointMatching(diffuser_planner, REACH, lam=0.0, num_inference_steps=5, learning_rate=1e-2)
    assert module.losses(next(iter(_contexts())))["loss"].item() == 0.0
    _fit(module)
    for tuned, base in zip(module.denoiser.parameters(), diffuser_planner.denoiser.parameters()):
        assert torch.equal(tuned, base)


def test_fine_tuned_folder_loads_plans_and_records_base_and_reward(diffuser_planner, tmp_path):
    diffuser_planner.save_pretrained(tmp_path / "base")
    module = _fit(AdjointMatching(str(tmp_path / "base"), REACH, lam=5.0, num_inference_steps=5, learning_rate=1e-2))
    module.save_pretrained(tmp_path / "tuned")
    record = json.loads((tmp_path / "tuned" / "planner.json").read_text())["finetune"]
    assert record["method"] == "adjoint_matching" and record["base"] == str(tmp_path / "base")
    assert record["objective"] == REACH and record["lambda"] == 5.0 and record["steps"] == 2
    tuned = Planner.from_pretrained(tmp_path / "tuned")
    assert tuned.config["eta"] == 1.0 and tuned.config["num_inference_steps"] == 5
    obs = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    plan = tuned.plan(obs, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(plan.observations[:, 0], obs, atol=1e-5)  # the pinned start state is untouched
    changed = [not torch.equal(a, b) for a, b in zip(tuned.denoiser.parameters(), diffuser_planner.denoiser.parameters())]
    assert any(changed)


def test_decision_diffuser_fine_tunes_through_its_classifier_free_guidance(decision_diffuser_planner):
    module = AdjointMatching(decision_diffuser_planner, {"type": "speed", "target": 1.0}, lam=1.0,
                             num_inference_steps=4)
    out = module.losses(next(iter(_contexts())))
    assert out["loss"].item() > 0
    out["loss"].backward()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.denoiser.parameters())
    assert all(p.grad is None for p in module.base.parameters())
    assert all(p.requires_grad for p in decision_diffuser_planner.denoiser.parameters())  # the caller's is untouched


def test_finetune_command_exports_a_planner_recording_base_and_objective(diffuser_planner, tiny_dataset, tmp_path):
    from diffplan.cli import main

    diffuser_planner.save_pretrained(tmp_path / "base")
    spec = {"type": "avoid_box", "lo": [1.5, 0.5], "hi": [2.5, 1.5]}
    main(["finetune", "--planner", str(tmp_path / "base"), "--objective", json.dumps(spec), "--export",
          str(tmp_path / "tuned"), "--lam", "2", "--steps", "2", "--batch-size", "4", "--num-inference-steps", "4",
          "--quiet"])
    meta = Planner.read_metadata(tmp_path / "tuned")
    assert meta["finetune"]["base"] == str(tmp_path / "base") and meta["finetune"]["objective"] == spec
    assert meta["finetune"]["lambda"] == 2.0 and meta["finetune"]["steps"] == 2 and "finetune_minutes" in meta
    plan = Planner.from_pretrained(tmp_path / "tuned").plan([1.0, 1.0, 0.0, 0.0])
    assert plan.observations.shape == (1, diffuser_planner.horizon, 4)


def test_finetune_command_rejects_a_bad_objective_in_one_line(diffuser_planner, tmp_path, capsys):
    from diffplan.cli import main

    diffuser_planner.save_pretrained(tmp_path / "base")
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--planner", str(tmp_path / "base"), "--objective", "{'type': reach}", "--export",
              str(tmp_path / "tuned")])
    assert exit_info.value.code == 2
    assert "--objective expects a JSON objective spec" in capsys.readouterr().err
    assert not (tmp_path / "tuned").exists()


def test_finetune_checkpoints_and_a_resumed_run_continues_where_it_stopped(diffuser_planner, tiny_dataset, tmp_path):
    from diffplan.cli import main

    diffuser_planner.save_pretrained(tmp_path / "base")
    common = ["finetune", "--planner", str(tmp_path / "base"), "--objective",
              json.dumps({"type": "avoid_box", "lo": [1.0, 0.5], "hi": [2.5, 1.5]}), "--lam", "2", "--batch-size", "4",
              "--num-inference-steps", "4", "--lr", "1e-3", "--checkpoint-every", "2", "--quiet"]
    main([*common, "--steps", "4", "--export", str(tmp_path / "straight")])
    main([*common, "--steps", "2", "--export", str(tmp_path / "first")])
    assert (tmp_path / "first.checkpoints" / "last.ckpt").is_file()
    assert "train/reward" in (tmp_path / "first.checkpoints" / "logs" / "metrics.csv").read_text()
    main([*common, "--steps", "4", "--export", str(tmp_path / "resumed"),
          "--ckpt-path", str(tmp_path / "first.checkpoints" / "last.ckpt")])
    straight, first, resumed = (Planner.from_pretrained(tmp_path / name) for name in ("straight", "first", "resumed"))
    assert Planner.read_metadata(tmp_path / "resumed")["finetune"]["steps"] == 4
    for a, b, c in zip(straight.denoiser.parameters(), first.denoiser.parameters(), resumed.denoiser.parameters()):
        torch.testing.assert_close(c, a)  # the resumed run is the straight run
    assert any(not torch.equal(a, b) for a, b in zip(straight.denoiser.parameters(), first.denoiser.parameters()))


def test_finetune_resume_from_a_missing_checkpoint_fails_in_one_line(diffuser_planner, tmp_path, capsys):
    from diffplan.cli import main

    diffuser_planner.save_pretrained(tmp_path / "base")
    with pytest.raises(SystemExit):
        main(["finetune", "--planner", str(tmp_path / "base"), "--objective", '{"type": "reach", "target": [1, 1]}',
              "--export", str(tmp_path / "tuned"), "--ckpt-path", str(tmp_path / "nope.ckpt")])
    assert "no such checkpoint" in capsys.readouterr().err


def test_env_contexts_are_evaluation_resets_away_from_benchmark_seeds(umaze):
    from diffplan.environments import make_eval_env
    from diffplan.finetune.contexts import CONTEXT_SEED, env_contexts

    contexts = env_contexts(umaze, 3)
    assert contexts["observations"].shape == (3, 4) and contexts["goal"].shape == (3, 2)
    obs, _ = make_eval_env(umaze).reset(seed=CONTEXT_SEED + 2)
    np.testing.assert_allclose(contexts["observations"][2].numpy(), obs["observation"], rtol=1e-6)
    assert not torch.equal(contexts["observations"][0], contexts["observations"][1])
    assert CONTEXT_SEED > 100_000  # never a validation (0-99) or test (1000+) reset seed
    with pytest.raises(ValueError, match="count must be at least 1"):
        env_contexts(umaze, 0)


def test_finetune_command_fine_tunes_on_env_contexts(diffuser_planner, tmp_path):
    from diffplan.cli import main

    diffuser_planner.save_pretrained(tmp_path / "base")
    main(["finetune", "--planner", str(tmp_path / "base"), "--objective",
          json.dumps({"type": "avoid_box", "lo": [1.0, 0.5], "hi": [2.5, 1.5]}), "--lam", "2", "--steps", "2",
          "--batch-size", "4", "--num-inference-steps", "4", "--lr", "1e-3", "--contexts", "env", "--env-contexts", "8",
          "--export", str(tmp_path / "tuned"), "--quiet"])
    meta = Planner.read_metadata(tmp_path / "tuned")
    assert meta["finetune_contexts"] == "env" and meta["finetune"]["steps"] == 2
    tuned = Planner.from_pretrained(tmp_path / "tuned")
    assert any(not torch.equal(a, b) for a, b in zip(tuned.denoiser.parameters(), diffuser_planner.denoiser.parameters()))
