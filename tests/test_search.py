"""TFG's beam search on synthetic scores: it finds a known optimum and keeps to its grid, beam and round limits."""

from __future__ import annotations

import math

import pytest

from diffplan.guidance.search import TFG_SPACE, Axis, beam_search, top

OPTIMUM = {"rho": 2.0, "mu": 0.5, "gamma": 0.01}


def bowl(params: dict[str, float]) -> float:
    """Concave in log-parameters, highest at OPTIMUM."""
    return -sum(math.log(params[k] / OPTIMUM[k]) ** 2 for k in OPTIMUM)


def one_step_apart(child: dict[str, float], parent: dict[str, float]) -> bool:
    changed = [k for k in child if child[k] != parent[k]]
    return len(changed) == 1 and child[changed[0]] == TFG_SPACE[changed[0]].value(
        round(math.log(parent[changed[0]] / TFG_SPACE[changed[0]].start, TFG_SPACE[changed[0]].factor)) + 1)


def test_grid_matches_tfg_defaults():
    assert [TFG_SPACE["rho"].value(k) for k in range(TFG_SPACE["rho"].levels)] == [0.25, 0.5, 1, 2, 4, 8]
    assert [TFG_SPACE["gamma"].value(k) for k in range(TFG_SPACE["gamma"].levels)] == [0.001, 0.01, 0.1, 1]
    with pytest.raises(ValueError, match="factor > 1"):
        Axis(0.25, 1.0, 8.0)


def test_search_finds_the_optimum_and_spawns_only_from_the_beam():
    calls = []
    streamed = []

    def score(params):
        calls.append(dict(params))
        return bowl(params)

    result = beam_search(score, top_k=2, max_rounds=6, on_candidate=streamed.append)
    assert result.best.params == OPTIMUM
    assert streamed == result.candidates and len(calls) == len(result.candidates)
    assert len({tuple(sorted(p.items())) for p in calls}) == len(calls)  # nothing scored twice
    assert result.candidates[0].params == {"rho": 0.25, "mu": 0.25, "gamma": 0.001} and result.candidates[0].round == 0
    for c in result.candidates[1:]:
        earlier = [d for d in result.candidates if d.round < c.round]
        assert c.parent in [d.params for d in top(earlier, 2)]  # spawned by the top 2 of the previous rounds
        assert one_step_apart(c.params, c.parent)
    assert 1 <= result.rounds <= 6
    for r in range(1, result.rounds + 1):
        assert len([c for c in result.candidates if c.round == r]) <= 2 * 3


def test_round_limit_stops_short_of_a_far_optimum():
    result = beam_search(bowl, max_rounds=2)
    assert result.rounds == 2 and result.best.params != OPTIMUM
    assert len(result.candidates) <= 1 + 2 * 2 * 3
    assert result.best.score == max(c.score for c in result.candidates)


def test_search_stops_when_nothing_is_left_to_score_and_nan_ranks_last():
    space = {"rho": Axis(1.0, 2.0, 2.0)}  # two grid values
    result = beam_search(lambda p: float("nan") if p["rho"] == 2.0 else -1.0, space=space, max_rounds=6)
    assert [c.params["rho"] for c in result.candidates] == [1.0, 2.0] and result.rounds == 1
    assert result.best.params == {"rho": 1.0}
    with pytest.raises(ValueError, match="top_k"):
        beam_search(bowl, top_k=0)
