"""Named conditions for Decision Diffuser: what a window is conditioned on, in normalized units.

- ``returns``: the discounted return-to-go from the window's current state (1 value).
- ``obs_mean:<d>``: the mean of observation dim ``d`` over the planned part of the window (the current state and
  after), a skill-like feature a user can command: forward speed, body height, a joint's posture. Several of
  them (and ``returns``) compose through classifier-free guidance, as the paper composes skills.

Targets given to the planner use the same units: the normalizer maps the data's range of each feature to [-1, 1].
"""

from __future__ import annotations

import torch

from diffplan.data.normalizer import Normalizer

OBS_MEAN = "obs_mean:"


def condition_size(name: str) -> int:
    """Number of values of one condition (its presence flag not counted)."""
    return 1


def check_conditions(names: list[str], normalizer: Normalizer) -> int:
    """Total condition-vector size (values + one presence flag per condition); bad names fail clearly."""
    obs_dim = normalizer.config["dims"]["observations"]
    for name in names:
        if name == "returns":
            if "returns" not in normalizer.fields:
                raise ValueError("The normalizer has no 'returns' field; refit it with PlanningDataModule "
                                 "(it fits returns-to-go).")
        elif name.startswith(OBS_MEAN):
            dim = name[len(OBS_MEAN):]
            if not dim.isdigit() or int(dim) >= obs_dim:
                raise ValueError(f"Condition {name!r}: expected 'obs_mean:<d>' with 0 <= d < {obs_dim} "
                                 f"(the observation size).")
        else:
            raise ValueError(f"Unknown condition(s) {[name]}; known: 'returns' and 'obs_mean:<d>' "
                             f"(add new ones in diffplan.algorithms.conditions).")
    if len(set(names)) != len(names):
        raise ValueError(f"Conditions {names} name one condition twice.")
    return sum(condition_size(n) + 1 for n in names)


def condition_value(name: str, batch: dict[str, torch.Tensor], normalizer: Normalizer, history: int) -> torch.Tensor:
    """(B, size) feature of a training batch of windows; plan point ``history`` is the current state."""
    if name == "returns":
        return normalizer.normalize("returns", batch["returns"][:, history, None])  # the current state's
    dim = int(name[len(OBS_MEAN):])
    obs = normalizer.normalize("observations", batch["observations"][:, history:, dim], dims=[dim])
    return obs.mean(1, keepdim=True)
