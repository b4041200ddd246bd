"""Data: dataset recipes, episodes loaded from Minari, trajectory windows, normalizer, datamodule."""
