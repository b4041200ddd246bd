"""Training-free guidance: each preset's step against its hand-computed formula on a toy model, schedules, zero
strength, and guidance improving objectives on a toy 2-D problem."""

from __future__ import annotations

import pytest
import torch

from diffplan.data.layout import TrajectoryLayout
from diffplan.data.normalizer import Normalizer
from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.sampler import denoise
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance.base import GuidanceContext
from diffplan.guidance.tfg import TFG, dps, freedom, lgd, mpgd, step_weight, ugd
from diffplan.objectives import AvoidBox, Reach

T = 20
B, H, D = 3, 4, 2
GOAL = torch.tensor([0.7, -0.3])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def units(std: float = 1.0) -> dict:
    """Normalizer and layout of a states-only 2-D plan; ``std`` scales environment units."""
    norm = Normalizer({"observations": D}, {"observations": "gaussian"})
    norm.observations_std.fill_(std)
    return {"normalizer": norm, "layout": TrajectoryLayout(D, 0)}


def quadratic(plan: dict[str, torch.Tensor]) -> torch.Tensor:
    """v = -||obs - goal||^2 summed over the plan: grad_obs v = -2 (obs - goal)."""
    return -((plan["observations"] - GOAL) ** 2).sum((1, 2))


SCALE = torch.linspace(0.6, 0.9, H * D).reshape(1, H, D)


def linear_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x0 = A x_t with a fixed diagonal A (so d x0 / d x_t = A)."""
    return SCALE * x


def first_step(guidance, x: torch.Tensor, seed: int = 1, constraints: Inpaint | None = None) -> torch.Tensor:
    s = NoiseSchedule(T)
    _, traj = denoise(linear_model, s, x, torch.tensor([12, 6]), guidance=guidance, clip_denoised=False,
                      generator=gen(seed), return_trajectory=True, context=units(), constraints=constraints)
    return traj.samples[1]


def coefficients() -> tuple[float, float]:
    a = NoiseSchedule(T).alphas_cumprod
    return a[12 + 1].item(), a[6 + 1].item()


def ddim(x: torch.Tensor) -> torch.Tensor:
    a, ap = coefficients()
    x0 = SCALE * x
    return ap**0.5 * x0 + (1 - ap) ** 0.5 * (x - a**0.5 * x0) / (1 - a) ** 0.5


def through_denoiser(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v(A x) per sample and its gradient with respect to x: A^T (-2 (A x - goal))."""
    y = SCALE * x - GOAL
    return -(y**2).sum((1, 2)), SCALE * (-2 * y)


def renoise(x_prev: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    a, ap = coefficients()
    return (a / ap) ** 0.5 * x_prev + (1 - a / ap) ** 0.5 * torch.randn(x_prev.shape, generator=generator)


def start() -> torch.Tensor:
    return torch.randn(B, H, D, generator=gen(5))


def test_dps_step_is_the_gradient_through_the_denoiser_over_abs_log_f():
    x = start()
    a, ap = coefficients()
    v, grad = through_denoiser(x)
    expected = ddim(x) + 0.3 * grad / v.abs()[:, None, None] / (a / ap) ** 0.5
    torch.testing.assert_close(first_step(dps(quadratic, rho=0.3), x), expected)


def test_lgd_step_averages_the_objective_over_gaussian_perturbations_of_x0():
    x = start()
    a, ap = coefficients()
    g = gen(1)
    eps = torch.randn(5, B, H, D, generator=g) * 0.2 * (1 - a) ** 0.5
    y = SCALE * x + eps - GOAL  # (5, B, H, D)
    weights = torch.softmax(-(y**2).sum((2, 3)), dim=0)[..., None, None]  # d log mean exp / d v_k
    grad = (weights * SCALE * (-2 * y)).sum(0)
    expected = ddim(x) + 0.3 * grad / (a / ap) ** 0.5
    torch.testing.assert_close(first_step(lgd(quadratic, rho=0.3, gamma=0.2, n_samples=5), x), expected)


def test_freedom_repeats_the_guided_step_after_renoising():
    x = start()
    a, ap = coefficients()
    g = gen(1)

    def guided(x_t):
        return ddim(x_t) + 0.3 * through_denoiser(x_t)[1] / (a / ap) ** 0.5

    expected = guided(renoise(guided(x), g))
    torch.testing.assert_close(first_step(freedom(quadratic, rho=0.3, recur_steps=2), x), expected)


def test_mpgd_step_moves_x0_by_the_gradient_on_x0_only():
    x = start()
    _, ap = coefficients()
    x0 = SCALE * x
    expected = ddim(x) + ap**0.5 * (0.3 * -2 * (x0 - GOAL))
    torch.testing.assert_close(first_step(mpgd(quadratic, mu=0.3), x), expected)


def test_ugd_combines_both_guidances_with_inner_iterations_and_recurrence():
    x = start()
    a, ap = coefficients()
    g = gen(1)

    def guided(x_t):
        x0 = moved = SCALE * x_t
        for _ in range(3):
            moved = moved + 0.1 * -2 * (moved - GOAL)
        return ddim(x_t) + 0.2 * through_denoiser(x_t)[1] / (a / ap) ** 0.5 + ap**0.5 * (moved - x0)

    expected = guided(renoise(guided(x), g))
    torch.testing.assert_close(first_step(ugd(quadratic, rho=0.2, mu=0.1, recur_steps=2, iter_steps=3), x), expected)


@pytest.mark.parametrize("gamma", [0.0, 0.3])  # 0.3: the objective sees Monte-Carlo perturbed copies (LGD)
def test_guidance_never_moves_pinned_entries_and_the_objective_sees_their_values(gamma):
    x = start()
    mask = torch.zeros(B, H, D, dtype=torch.bool)
    mask[:, 0] = True
    values = torch.full((B, H, D), 5.0)
    seen = []

    def recording(plan):
        seen.append(plan["observations"][:, 0].detach().clone())
        return quadratic(plan)

    out = first_step(TFG(recording, rho=0.5, mu=0.5, gamma=gamma, n_samples=4), x, constraints=Inpaint(mask, values))
    plain = first_step(None, x, constraints=Inpaint(mask, values))
    assert torch.equal(out[mask], values[mask])
    assert not torch.isclose(out[~mask], plain[~mask]).any()
    assert seen and all(torch.equal(s, values[:1, 0].expand_as(s)) for s in seen)


def toy_context(t: int, t_prev: int, timesteps: torch.Tensor) -> GuidanceContext:
    s = NoiseSchedule(T)
    return GuidanceContext(schedule=s, t=torch.tensor([t]), t_prev=torch.tensor([t_prev]), eta=0.0, step_index=0,
                           num_steps=len(timesteps), timesteps=timesteps)


@pytest.mark.parametrize("kind", ["increase", "decrease", "constant"])
def test_schedules_average_one_over_the_chain_and_change_in_their_direction(kind):
    rows = NoiseSchedule(T).sampling_timesteps(6)
    following = [*rows[1:].tolist(), -1]
    like = torch.zeros(1, 1, 1)
    w = torch.stack([step_weight(kind, toy_context(int(t), int(tp), rows), like).flatten()
                     for t, tp in zip(rows.tolist(), following)]).flatten()
    assert w.mean().item() == pytest.approx(1.0, rel=1e-5)
    diffs = w[1:] - w[:-1]  # along the chain, from noisy to clean
    if kind == "increase":
        assert (diffs > 0).all()
    elif kind == "decrease":
        assert (diffs < 0).all()
    else:
        assert torch.allclose(w, torch.ones_like(w))


class GaussianToy:
    """The exact x0 predictor of data N(mean, std^2) per coordinate: E[x0 | x_t]."""

    def __init__(self, mean: float, std: float):
        self.mean, self.std, self.schedule = mean, std, NoiseSchedule(T)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.schedule.alpha_bar(t, x)
        return self.mean + a.sqrt() * self.std**2 / (a * self.std**2 + 1 - a) * (x - a.sqrt() * self.mean)

    def sample(self, guidance, n: int = 256, seed: int = 0) -> torch.Tensor:
        noise = torch.randn(n, 3, D, generator=gen(seed))
        return denoise(self, self.schedule, noise, self.schedule.sampling_timesteps(10), guidance=guidance,
                       clip_denoised=False, generator=gen(seed + 1), context=units(std=2.0))


@pytest.mark.parametrize("make", [lambda o: TFG(o, rho=0.3, mu=0.3), lambda o: dps(o, rho=0.3),
                                  lambda o: lgd(o, rho=0.3, gamma=0.1), lambda o: freedom(o, rho=0.3),
                                  lambda o: mpgd(o, mu=0.3), lambda o: ugd(o, rho=0.2, mu=0.2)],
                         ids=["tfg", "dps", "lgd", "freedom", "mpgd", "ugd"])
def test_every_method_brings_toy_samples_nearer_a_goal(make):
    toy = GaussianToy(0.0, 0.5)
    reach = Reach([1.5, 1.5], [0, 1])
    plain = -reach({"observations": 2.0 * toy.sample(None)}).mean()  # env units: std 2
    guided = -reach({"observations": 2.0 * toy.sample(make(reach))}).mean()
    assert guided < 0.8 * plain, (guided, plain)


def test_avoid_guidance_pushes_toy_plans_out_of_a_box():
    toy = GaussianToy(0.0, 0.3)
    box = AvoidBox([-0.8, -0.8], [0.8, 0.8], [0, 1], margin=0.1)
    inside = box.inside({"observations": 2.0 * toy.sample(None)}).float().mean()
    guided = box.inside({"observations": 2.0 * toy.sample(TFG(box, rho=0.5, mu=0.5, iter_steps=2))}).float().mean()
    assert inside > 0.9 and guided < 0.1, (inside, guided)


@pytest.mark.parametrize("make", [lambda o: TFG(o, rho=0.0, mu=0.0, recur_steps=3, gamma=0.5),
                                  lambda o: dps(o, rho=0.0), lambda o: freedom(o, rho=0.0, recur_steps=3),
                                  lambda o: mpgd(o, mu=0.0), lambda o: ugd(o, rho=0.0, mu=0.0)],
                         ids=["tfg", "dps", "freedom", "mpgd", "ugd"])
def test_zero_strength_is_bit_identical_to_unguided_sampling(make):
    toy = GaussianToy(0.2, 0.5)
    guidance = make(Reach([1.5, 1.5], [0, 1]))
    assert not guidance.needs_grad and guidance.recurrence == 1
    assert torch.equal(toy.sample(guidance), toy.sample(None))


@pytest.mark.parametrize("kwargs, match", [({"rho": -1.0}, "'rho' must be a number >= 0"),
                                           ({"recur_steps": 0}, "'recur_steps' must be an integer >= 1"),
                                           ({"mu_schedule": "cosine"}, "'mu_schedule' must be one of")])
def test_bad_hyper_parameters_fail_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TFG(quadratic, **kwargs)
