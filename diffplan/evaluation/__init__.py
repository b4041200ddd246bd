"""Evaluation: rollouts over gymnasium vector envs, normalized scores, results rows and plots."""

from diffplan.evaluation.rollout import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "evaluate"]
