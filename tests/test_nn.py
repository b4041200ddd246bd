"""Denoisers: the MLP denoiser for short segments keeps the shared (B, H, C) contract and learns."""

from __future__ import annotations

import pytest
import torch

from diffplan.nn.mlp import MLPDenoiser


def test_mlp_denoiser_refuses_another_horizon_with_a_clear_message():
    net = MLPDenoiser(transition_dim=6, horizon=6, hidden=32, depth=2)
    assert net(torch.zeros(3, 6, 6), torch.zeros(3, dtype=torch.long)).shape == (3, 6, 6)
    with pytest.raises(ValueError, match="built for \\(H, C\\) = \\(6, 6\\), got \\(8, 6\\)"):
        net(torch.zeros(3, 8, 6), torch.zeros(3, dtype=torch.long))


def test_mlp_denoiser_fits_an_x0_target_through_the_diffuser_objective(tiny_dataset, loss_drop):
    from diffplan.algorithms.diffuser import Diffuser
    from diffplan.data.datamodule import PlanningDataModule

    dm = PlanningDataModule("pointmaze-umaze", horizon=6, stride=3, batch_size=32, progress=False)
    torch.manual_seed(0)
    model = Diffuser(dm.normalizer, 6, denoiser_class="diffplan.nn.mlp.MLPDenoiser",
                     denoiser_kwargs={"hidden": 64, "depth": 2}, num_train_timesteps=20, value_head=False)
    assert loss_drop(model, next(iter(dm.train_dataloader())), steps=150, lr=3e-3) < 0.5


def test_causal_transformer_ignores_future_tokens_and_takes_per_token_timesteps():
    from diffplan.nn.transformer import TransformerDenoiser

    torch.manual_seed(0)
    net = TransformerDenoiser(3, 8, d_model=16, depth=2, heads=2, emb_dim=8, causal=True)
    for p in net.parameters():  # adaLN-Zero starts as the identity; perturb so every path matters
        torch.nn.init.normal_(p, std=0.2)
    x, t = torch.randn(2, 8, 3), torch.randint(0, 20, (2, 8))
    y = net(x, t)
    x2 = x.clone()
    x2[:, 5:] += 1.0
    y2 = net(x2, t)
    torch.testing.assert_close(y[:, :5], y2[:, :5])
    assert not torch.allclose(y[:, 5:], y2[:, 5:])
    with pytest.raises(ValueError, match=r"t must be \(B,\) or \(B, H\)"):
        net(x, torch.zeros(2, 3, dtype=torch.long))
