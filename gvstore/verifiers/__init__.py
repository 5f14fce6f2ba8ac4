"""Verifiers: the verification methods, which turn generations into proxy utilities
(``verification`` and ``comparison`` records). Built in: ``mc`` (log-likelihood of Correct vs
Incorrect), ``cot_binary`` and ``cot_score`` (a justification ending in a verdict),
``tournament`` (single elimination).

A method is one module declaring a ``base.Method`` (name, templates, parser, call kind, score
range, histogram bins); ``registry`` holds them by name and is what every consumer reads;
``templates`` holds what the prompts share; ``parse`` the verdict parsers. The idempotent,
resumable step is ``gvstore.steps.verify.run``. Importing this package imports no back end.
"""

from gvstore.verifiers.base import Method
from gvstore.verifiers.registry import get_method, method_names, register, unregister
from gvstore.verifiers.templates import get_template

__all__ = ["Method", "get_method", "get_template", "method_names", "register", "unregister"]
