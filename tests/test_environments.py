"""Environments: gymnasium-robotics registers quietly."""

from __future__ import annotations

import subprocess
import sys


def test_gymnasium_robotics_imports_without_the_adroit_notice():
    code = "from diffplan.environments import make_eval_env; from diffplan.tasks import load_task; " \
           "make_eval_env(load_task('pointmaze-umaze')).close()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Adroit" not in proc.stderr + proc.stdout
