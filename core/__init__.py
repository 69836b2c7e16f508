"""RecScope library: data, models, evaluation, explanation and indexing. No UI code here."""

__version__ = "0.1.0"
