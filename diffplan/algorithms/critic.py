"""A learned value of planned states for locomotion (Diffusion Veteran's critic recipe), trained by ``diffplan fit``.

DV selects among sampled plans by the sum over the planned states of a state value V(s), trained on the planner's
own dataset with discount 0.997 and a -100 penalty on the step that ends in a fall. Here:

- ``TransitionDataModule`` serves one item per environment step, ``(s, r, s', bootstrap, return)``. It is a
  ``PlanningDataModule`` (same task card, dataset id and episode cache) whose items are transitions rather than
  windows: TD needs the reward and the "episode terminated" flag of each step, which windows do not carry.
- ``CriticTraining`` regresses ``StateCritic``'s V(s) on either target:
  ``"td"``: ``r + bootstrap * V_target(s')`` with a Polyak-averaged target network, where ``bootstrap`` is the
  discount, or 0 on the step into a terminal state (a time-limit truncation still bootstraps);
  ``"mc"``: the discounted return to the end of the recorded episode (no bootstrap, so states near a time-limit
  end are valued low).
  Or, with ``"iql"``, it trains IQL's critic (Kostrikov et al., 2022) without its actor: ``ActionCritic``'s twin
  Q(s, a) regress on ``r + bootstrap * V(s')``, and V(s) on the ``expectile`` of the target Q's min over the data's
  actions, an in-sample estimate of the best action's value. IDQL (Hansen-Estruch et al., 2023) executes the
  sampled action with the highest such Q, which ``{"method": "select", "objective": {"type": "critic", ...}}``
  does with the plan's first action.
- ``--export DIR`` writes the critic folder (``config.json`` + ``weights.safetensors`` + ``training.json``), which
  the objective spec ``{"type": "critic", "path": DIR}`` loads, e.g. for ``{"method": "select", ...}``.

The td / mc V is the behaviour policy's value (no max over actions): a selection signal among plans that stay near
the data. The iql Q leans, through the expectile, towards the best actions the data holds.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from diffplan.data.datamodule import PlanningDataModule
from diffplan.data.episodes import EpisodeArrays
from diffplan.data.normalizer import Normalizer
from diffplan.data.windows import discounted_returns_to_go, penalized_rewards
from diffplan.io import atomic_folder, save_module, write_json
from diffplan.nn.critic import ActionCritic, StateCritic

TARGETS = ("td", "mc", "iql")


class Transitions(Dataset):
    """Every step of every episode as a dict of float32 tensors.

    Items: ``observations`` (O,) s_t, ``actions`` (A,) a_t, ``next_observations`` (O,) s_{t+1}, ``rewards`` () r_t (with the
    termination penalty on a fall), ``bootstrap`` () ``discount`` or 0 where s_{t+1} is terminal, ``returns`` ()
    the discounted return from s_t to the end of its recorded episode.

    Args:
        episodes: the dataset's episodes.
        discount: gamma of the returns and of the TD bootstrap.
        termination_penalty: added to the reward of the step that ends a terminated episode (DV: -100).
    """

    def __init__(self, episodes: EpisodeArrays, discount: float, termination_penalty: float = 0.0):
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}.")
        steps = episodes.episode_lengths - 1
        self.episodes = episodes
        self.index = np.concatenate([s + np.arange(n) for s, n in zip(episodes.episode_starts, steps)])
        last = self.index + 1 == np.repeat(episodes.episode_starts + episodes.episode_lengths - 1, steps)
        terminal = last & np.repeat(episodes.terminated, steps)
        rewards = penalized_rewards(episodes, termination_penalty)
        self.rewards = rewards[self.index]
        self.bootstrap = np.where(terminal, 0.0, discount).astype(np.float32)
        self.returns = discounted_returns_to_go(episodes, discount, rewards)[self.index]
        self.num_terminal = int(terminal.sum())

    def normalizer(self) -> Normalizer:
        """Gaussian statistics of the observations, actions and returns: what ``CriticTraining`` is built with."""
        return Normalizer.fit({"observations": self.episodes.observations, "actions": self.episodes.actions,
                               "returns": self.returns[:, None]},
                              {"observations": "gaussian", "actions": "gaussian", "returns": "gaussian"})

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, items: list[int]) -> dict[str, torch.Tensor]:
        """A whole batch in one indexing (the DataLoader calls this instead of one ``__getitem__`` per item, which
        made critic training about 10x slower than its network needs)."""
        i = np.asarray(items)
        t = self.index[i]
        obs = self.episodes.observations
        return {"observations": torch.from_numpy(obs[t]), "actions": torch.from_numpy(self.episodes.actions[t]),
                "next_observations": torch.from_numpy(obs[t + 1]), "rewards": torch.from_numpy(self.rewards[i]),
                "bootstrap": torch.from_numpy(self.bootstrap[i]), "returns": torch.from_numpy(self.returns[i])}


def batched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DataLoader's collate step for ``Transitions.__getitems__``, whose batch is already stacked."""
    return batch


class TransitionDataModule(PlanningDataModule):
    """The task's dataset as transitions for critic training; its normalizer holds Gaussian statistics of the
    observations and of the discounted returns (the critic's input and output scales).

    Args:
        task: task card name or path (``hopper-medium``).
        dataset_id: any Minari dataset id; defaults to the task's local one.
        discount: gamma (DV uses 0.997 on MuJoCo).
        termination_penalty: added to the reward of the last step of every terminated episode (DV: -100 for a
            fall). Pass 0 for datasets whose episodes terminate on success (the local PointMaze data never does).
        batch_size, num_workers, seed, progress: as in ``PlanningDataModule``.
    """

    def __init__(self, task: str, dataset_id: str | None = None, discount: float = 0.997,
                 termination_penalty: float = -100.0, batch_size: int = 256, num_workers: int = 0, seed: int = 0,
                 progress: bool = True):
        super().__init__(task, dataset_id, horizon=2, stride=1, batch_size=batch_size, num_workers=num_workers,
                         seed=seed, progress=progress, termination_penalty=termination_penalty)
        self.discount = float(discount)
        self.transitions = Transitions(self.episodes, self.discount, self.termination_penalty)
        self.normalizer = self.transitions.normalizer()

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.transitions, collate_fn=batched)

    def describe(self) -> str:
        t = self.transitions
        return (f"{self.dataset_id}: {len(self.episodes.episode_lengths)} episodes, {len(t)} transitions "
                f"({t.num_terminal} into a terminal state), discount {self.discount}, termination penalty "
                f"{self.termination_penalty}, return {t.returns.mean():.1f} +- {t.returns.std():.1f}")


class CriticTraining(L.LightningModule):
    """Trains a ``StateCritic`` V(s) by TD or Monte-Carlo regression, or an ``ActionCritic`` Q(s, a) by IQL;
    ``export`` writes the critic folder (the V or the Q).

    The loss is the mean squared error in units of the returns' standard deviation (``value_scale``), so one
    learning rate fits tasks with rewards of any size.

    Args:
        normalizer: from ``TransitionDataModule`` (linked by ``diffplan fit``): Gaussian statistics of
            ``observations`` (the critic's input) and ``returns`` (its output shift and scale).
        target: ``"td"`` (bootstrapped, with a target network), ``"mc"`` (discounted returns) or ``"iql"`` (Q and
            an expectile V, each with its own MLP; Q has a target network).
        hidden, depth: the MLPs of the critics.
        learning_rate: Adam step size (DV and IQL: 3e-4).
        tau: Polyak rate of the target network, ``target <- (1 - tau) target + tau online`` after each step.
        expectile: IQL's expectile of V (0.7 on locomotion; 0.5 is the data's mean, i.e. SARSA); iql only.
        horizon, goal_dims: linked by ``diffplan fit`` into every model (planners use them) and unused here: a
            critic reads single transitions. Taken so that a resumed fit, which reads them back from the
            checkpoint, can build the critic.
    """

    def __init__(self, normalizer: Normalizer, target: str = "td", hidden: int = 256, depth: int = 2,
                 learning_rate: float = 3e-4, tau: float = 0.005, expectile: float = 0.7,
                 horizon: int | None = None, goal_dims: Sequence[int] = ()):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"CriticTraining: target must be one of {list(TARGETS)}, got {target!r}.")
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"CriticTraining: tau must be in (0, 1], got {tau}.")
        if not 0.0 < expectile < 1.0:
            raise ValueError(f"CriticTraining: expectile must be in (0, 1), got {expectile}.")
        kinds = getattr(normalizer, "kinds", {})
        if kinds.get("observations") != "gaussian" or kinds.get("returns") != "gaussian":
            raise ValueError("CriticTraining needs Gaussian statistics of observations and returns, got normalizer "
                             f"kinds {kinds}; train it with --data diffplan.algorithms.critic.TransitionDataModule.")
        dims = normalizer.config["dims"]
        if target == "iql" and "actions" not in dims:
            raise ValueError("CriticTraining(target='iql') needs the actions' statistics in the normalizer; build it "
                             "with Transitions.normalizer() (diffplan.algorithms.critic.TransitionDataModule).")
        self.save_hyperparameters(ignore=["normalizer"])
        self.target, self.learning_rate, self.tau, self.expectile = target, learning_rate, tau, expectile
        obs_dim = dims["observations"]
        self.critic: StateCritic | ActionCritic = StateCritic(obs_dim, hidden=hidden, depth=depth)
        self.expectile_value: StateCritic | None = None  # iql's V(s), trained beside Q but not exported
        if target == "iql":
            self.critic = ActionCritic(obs_dim, dims["actions"], hidden=hidden, depth=depth)
            self.expectile_value = StateCritic(obs_dim, hidden=hidden, depth=depth)
        for critic in filter(None, (self.critic, self.expectile_value)):
            with torch.no_grad():
                critic.obs_mean.copy_(normalizer.observations_mean)
                critic.obs_std.copy_(normalizer.observations_std)
                critic.value_shift.copy_(normalizer.returns_mean.reshape(()))
                critic.value_scale.copy_(normalizer.returns_std.reshape(()))
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False) if target != "mc" else None
        self.data_record: dict[str, Any] = {}

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) regression targets of the critic (no gradient): of V(s) for td / mc, of Q(s, a) for iql."""
        if self.target_critic is None:
            return batch["returns"]
        bootstrap = self.expectile_value if self.expectile_value is not None else self.target_critic
        with torch.no_grad():
            return batch["rewards"] + batch["bootstrap"] * bootstrap.state_values(batch["next_observations"])

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss`` (scaled squared error; for iql the Q and the expectile V losses summed), ``value`` and
        ``target`` (the critic's batch means, return units)."""
        target = self.targets(batch)
        scale = self.critic.value_scale
        if self.expectile_value is None:
            value = self.critic.state_values(batch["observations"])
            return {"loss": ((value - target) / scale).pow(2).mean(), "value": value.detach().mean(),
                    "target": target.mean()}
        obs, act = batch["observations"], batch["actions"]
        q1, q2 = self.critic.both_values(obs, act)
        q_loss = ((q1 - target) / scale).pow(2).mean() + ((q2 - target) / scale).pow(2).mean()
        with torch.no_grad():
            q_target = self.target_critic.action_values(obs, act)
        gap = (q_target - self.expectile_value.state_values(obs)) / scale
        v_loss = ((self.expectile - (gap < 0).float()).abs() * gap.pow(2)).mean()
        return {"loss": q_loss + v_loss, "value": torch.minimum(q1, q2).detach().mean(), "target": target.mean(),
                "v_loss": v_loss.detach()}

    @torch.no_grad()
    def update_target(self) -> None:
        """Polyak step of the target network towards the online critic (td and iql)."""
        if self.target_critic is not None:
            for tgt, src in zip(self.target_critic.parameters(), self.critic.parameters()):
                tgt.lerp_(src, self.tau)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=len(batch["rewards"]))
        return out["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.update_target()

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if isinstance(dm, TransitionDataModule):
            self.data_record = {"dataset_id": dm.dataset_id, "task": dm.task.name, "discount": dm.discount,
                                "termination_penalty": dm.termination_penalty}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        nets = filter(None, (self.critic, self.expectile_value))
        return torch.optim.Adam([p for net in nets for p in net.parameters()], lr=self.learning_rate)

    def export(self, folder: str | Path, **metadata: Any) -> None:
        """Write the critic folder: ``config.json`` + ``weights.safetensors`` (``diffplan.io.save_module``) and
        ``training.json`` (target, data, steps and ``metadata``). Replaces an earlier export, never user files."""
        with atomic_folder(folder) as tmp:
            save_module(self.critic, tmp)
            write_json(tmp / "training.json", {**dict(self.hparams), **self.data_record, **metadata})
