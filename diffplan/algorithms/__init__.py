"""One file per paper: its training module(s) and its Planner."""
