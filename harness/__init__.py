"""harness: a reproducible deep-metric-learning thesis and the benchmark harness that runs it."""

__version__ = "0.1.0"
