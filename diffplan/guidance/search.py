"""TFG's beam search over its strengths (rho, mu, gamma), as a pure function of a score callable.

The search (Ye et al. 2024, ``searching.py``; ANCHORS §16.2) walks a geometric grid per parameter: rho and mu start
at 0.25 and double up to 8, gamma starts at 0.001 and grows x10 up to 1. It scores the start point, then each
round takes the top-K configurations scored so far (K = 2) and scores their unscored neighbours, a neighbour being
one parameter moved one grid step up. It stops after ``max_rounds`` rounds or when a round has nothing new to score.

``score(params) -> float`` is higher-is-better and gets the hyper-parameter part of a guidance spec, e.g.
``{"rho": 0.5, "mu": 0.25, "gamma": 0.001}``; merge it into a spec (``{"method": "tfg", **params, "objective":
...}``) and score that however fits the budget: a rollout return (``diffplan.evaluation.rollout.evaluate``) or a
plan-level objective value (``benchmarks/guidance/search.py`` offers both). A NaN score ranks last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Params = dict[str, float]


@dataclass(frozen=True)
class Axis:
    """One searched parameter: ``start * factor**k`` for k = 0, 1, ... while the value is <= ``maximum``."""

    start: float
    factor: float
    maximum: float

    def __post_init__(self) -> None:
        if not (self.start > 0 and self.factor > 1 and self.maximum >= self.start):
            raise ValueError(f"An axis needs start > 0, factor > 1 and maximum >= start, got {self}.")

    @property
    def levels(self) -> int:
        """Number of grid values."""
        return math.floor(math.log(self.maximum / self.start, self.factor) + 1e-9) + 1

    def value(self, level: int) -> float:
        """The grid value at ``level`` (rounded to 6 significant digits, so 0.001 * 10**2 is 0.1)."""
        return float(f"{self.start * self.factor**level:.6g}")


TFG_SPACE: dict[str, Axis] = {"rho": Axis(0.25, 2.0, 8.0), "mu": Axis(0.25, 2.0, 8.0), "gamma": Axis(0.001, 10.0, 1.0)}


@dataclass(frozen=True)
class Candidate:
    """A scored configuration: ``params`` (name -> value), its ``score``, the ``round`` that scored it (0 = the
    start point) and the ``parent`` it was spawned from (None for the start)."""

    params: Params
    score: float
    round: int
    parent: Params | None = None


@dataclass
class SearchResult:
    """Every scored candidate in scoring order; ``best`` is the highest score (the earliest among ties)."""

    candidates: list[Candidate] = field(default_factory=list)

    @property
    def best(self) -> Candidate:
        return top(self.candidates, 1)[0]

    @property
    def rounds(self) -> int:
        """Rounds after the start point that scored something."""
        return max((c.round for c in self.candidates), default=0)


def _rank(score: float) -> float:
    return -math.inf if math.isnan(score) else score


def top(candidates: list[Candidate], k: int) -> list[Candidate]:
    """The ``k`` best candidates, best first (stable: earlier candidates win ties; NaN scores rank last)."""
    return sorted(candidates, key=lambda c: -_rank(c.score))[:k]


def beam_search(score: Callable[[Params], float], space: Mapping[str, Axis] | None = None, top_k: int = 2,
                max_rounds: int = 6, on_candidate: Callable[[Candidate], None] | None = None) -> SearchResult:
    """Beam search of ``score`` over the grid of ``space`` (default ``TFG_SPACE``).

    Args:
        score: ``params -> float``, higher is better; called once per configuration.
        space: parameter name -> its grid axis.
        top_k: configurations that spawn neighbours each round.
        max_rounds: rounds after scoring the start point.
        on_candidate: called with each candidate as soon as it is scored (e.g. to append a CSV row).

    Returns:
        All scored candidates; at most ``1 + max_rounds * top_k * len(space)`` calls of ``score``.
    """
    space = dict(TFG_SPACE if space is None else space)
    if top_k < 1 or max_rounds < 0:
        raise ValueError(f"beam_search needs top_k >= 1 and max_rounds >= 0, got {top_k} and {max_rounds}.")
    names = list(space)
    keys: list[tuple[int, ...]] = []  # grid levels of result.candidates[i]
    result = SearchResult()

    def run(key: tuple[int, ...], round_: int, parent: Params | None) -> None:
        params = {name: space[name].value(k) for name, k in zip(names, key)}
        candidate = Candidate(params, float(score(dict(params))), round_, parent)
        keys.append(key)
        result.candidates.append(candidate)
        if on_candidate is not None:
            on_candidate(candidate)

    run(tuple(0 for _ in names), 0, None)
    for round_ in range(1, max_rounds + 1):
        ranked = sorted(range(len(keys)), key=lambda i: -_rank(result.candidates[i].score))[:top_k]
        frontier: dict[tuple[int, ...], Params] = {}
        for i in ranked:
            for axis, name in enumerate(names):
                key = keys[i]
                step = key[:axis] + (key[axis] + 1,) + key[axis + 1:]
                if step[axis] < space[name].levels and step not in keys and step not in frontier:
                    frontier[step] = result.candidates[i].params
        if not frontier:
            break
        for key, parent in frontier.items():
            run(key, round_, parent)
    return result
