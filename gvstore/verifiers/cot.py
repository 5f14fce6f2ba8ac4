"""Chain-of-thought verification: the verifier writes a short justification and a verdict.

``cot_binary`` ends with ``Correctness: correct|incorrect`` (score 1.0 or 0.0), ``cot_score``
with ``Score: N`` for N in 1..10 (the score is N). The last well-formed verdict counts (see
``parse.py``); an output without one is recorded with ``score = None`` and its parse status,
never dropped and never guessed. Outputs are sampled, so repeated verifications of one
generation (``sample_index`` 0..m-1, each with its own seed) measure the verifier's own
variance (paper, appendix D.4).
"""

from __future__ import annotations

from gvstore.errors import GvstoreError
from gvstore.verifiers.parse import Parsed, parse_binary, parse_score

COT_METHODS = ("cot_binary", "cot_score")


def parse(method: str, text: str) -> tuple[float | None, str]:
    """(score or None, parse status) of one chain-of-thought output."""
    if method == "cot_binary":
        got: Parsed = parse_binary(text)
    elif method == "cot_score":
        got = parse_score(text)
    else:
        raise GvstoreError(f"{method!r} is not a chain-of-thought method ({COT_METHODS})")
    return (float(got.value) if isinstance(got.value, float) else None), got.status
