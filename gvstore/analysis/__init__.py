"""Offline analysis of a record store: filter specs, weights, gaps, sweeps, exports, pass@k.

Only this side of gvstore imports polars and numpy. ``docs/metrics.md`` defines every number.
"""
