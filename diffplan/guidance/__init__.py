"""Guidance: steer sampling with two hooks, ``predict`` (model level) and ``step`` (sample level)."""

from diffplan.guidance.base import Compose, Guidance

__all__ = ["Compose", "Guidance"]
