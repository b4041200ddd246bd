"""Environments: gymnasium-robotics registers quietly."""

from __future__ import annotations

import subprocess
import sys


def test_gymnasium_robotics_imports_without_the_adroit_notice():
    code = "from diffplan.environments import make_eval_env; from diffplan.tasks import load_task; " \
           "make_eval_env(load_task('pointmaze-umaze')).close()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Adroit" not in proc.stderr + proc.stdout


def test_each_hold_card_is_its_base_card_with_goal_holds_so_scores_compare():
    """A ``-hold`` task differs from its base only by the recipe's ``hold_steps`` (and its names): same eval map,
    episode length and reference scores, so its rows sit beside the base task's rows."""
    from diffplan.tasks import available_tasks, load_task

    holds = [name for name in available_tasks() if name.endswith("-hold")]
    assert {"pointmaze-umaze-hold", "pointmaze-medium-hold", "pointmaze-large-hold"} <= set(holds)
    for name in holds:
        hold, base = load_task(name), load_task(name.removesuffix("-hold"))
        assert hold.dataset.recipe_params.pop("hold_steps") > 0, name
        assert hold.dataset.recipe_params == base.dataset.recipe_params, name
        assert (hold.eval, hold.env_kwargs, hold.env_id) == (base.eval, base.env_kwargs, base.env_id), name
        assert (hold.ref_min_score, hold.ref_max_score) == (base.ref_min_score, base.ref_max_score), name
