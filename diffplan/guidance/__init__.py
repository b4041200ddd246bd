"""Guidance: steer sampling with hooks (``predict``, ``guide_x0``, ``guide_step``), compose, select whole plans.

Methods: classifier-free (``cfg``), value gradients (``value``), training-free guidance and its presets (``tfg``),
sample-and-select (``select``); their JSON form is ``spec.guidance_from_spec``.
"""

from diffplan.guidance.base import Compose, Guidance

__all__ = ["Compose", "Guidance"]
