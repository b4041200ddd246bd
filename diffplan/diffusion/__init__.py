"""Noise schedules, inpainting constraints, the training objective and THE sampling loop."""
