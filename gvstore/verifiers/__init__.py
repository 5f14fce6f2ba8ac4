"""Verifiers: turn generations into proxy utilities (``verification`` and ``comparison``
records). Methods: ``mc`` (log-likelihood of Correct vs Incorrect), ``cot_binary`` and
``cot_score`` (a justification ending in a verdict), ``tournament`` (single elimination).

The idempotent, resumable step is ``gvstore.steps.verify.run``; ``templates`` holds every
prompt; ``parse`` the verdict parsers. Importing this package imports no back end.
"""

from gvstore.verifiers.common import Selection, VerifySpec, VerifySummary, select
from gvstore.verifiers.templates import METHODS, get_template

__all__ = ["METHODS", "Selection", "VerifySpec", "VerifySummary", "get_template", "select"]
