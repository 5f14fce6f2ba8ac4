"""Offline analysis of a record store: filter specs, weights, gaps, sweeps, exports, pass@k.

Only this side of gvstore imports polars and numpy. ``docs/metrics.md`` defines every number.
"""

# The bootstrap defaults (gap, sweep, cross, rounds and their commands); here, not in gap.py, so
# that the command line can show them without importing numpy.
DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
