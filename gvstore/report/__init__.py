"""The report of a study, from the store alone: ``compute`` builds and writes it (nothing
printed), ``headline`` writes its headline scalars for ``dvc metrics``, ``parsing`` says how
often each verifier's output failed to parse, ``views`` gives what the CLI and the report
stage print of it.

``build`` returns a ``Report`` (the full report and the files written) and prints nothing;
``views`` and ``rounds_views`` give what ``gvstore report``, ``gvstore rounds`` and the report
stage print of it (rich tables and lines of text).
"""

from __future__ import annotations

from gvstore.report.compute import FULL, Report, build
from gvstore.report.views import _passk_rows, rounds_views, views

__all__ = ["FULL", "Report", "_passk_rows", "build", "rounds_views", "views"]
