"""Denoisers and heads."""
