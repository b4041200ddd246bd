"""Packages: ``diffplan*``, plus the top-level ``envs/`` task cards shipped inside the wheel as ``diffplan/envs``."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["diffplan*"]), "diffplan.envs"], package_dir={"diffplan.envs": "envs"})
