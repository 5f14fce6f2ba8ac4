"""What a verification method is: one ``Method`` declaration, read by every consumer.

A method module (``mc.py``, ``cot_binary.py``, ...) declares its ``METHOD``: its name, its
prompt templates per task family, how its verdict text parses, how the verifier is called,
the range of its scores and the bins of the score histogram a verify run reports. Params
validation, filter specs, the simulator and the verify step read these declarations through
``gvstore.verifiers.registry``; none of them lists the methods again.

Call kinds:

* ``sample``: the verifier writes text (sampled, seeded), which ``parser`` turns into a score
  and a parse status; one ``Verification`` per generation and repeat;
* ``loglik``: the verifier scores ``answers`` (correct, incorrect) as continuations of the
  prompt; deterministic, so one ``Verification`` per generation, recorded without sampling;
* ``pairwise``: the verifier compares two generations (``Comparison`` records); ``parser``
  returns ``"A"`` or ``"B"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gvstore.errors import GvstoreError
from gvstore.verifiers.parse import Parsed
from gvstore.verifiers.templates import Template

CallKind = Literal["sample", "loglik", "pairwise"]
CALL_KINDS: tuple[CallKind, ...] = ("sample", "loglik", "pairwise")
_NAME = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
_SPEC_WORDS = ("mean", "and", "or")


def whole_bin(score: float) -> str | None:
    """The histogram label of a score by its whole part (8.5 counts as 8); None if not
    finite."""
    return str(math.floor(score)) if math.isfinite(score) else None


@dataclass(frozen=True, eq=False)
class Method:
    """One verification method (see the module docstring).

    ``templates`` maps a task family to its template; a family it does not name uses its
    ``generic`` template. ``base_cue`` is appended to the template text for a base-model
    verifier (raw text, no chat template; part of the text, so of the digest). ``answers``
    (``loglik`` only) maps a verifier model kind to the (correct, incorrect) continuations.
    ``bins`` are the histogram labels always reported (count 0 included); ``bin_of`` gives a
    score's label (a label outside ``bins`` is added), None to leave the score out.
    """

    name: str
    call: CallKind
    templates: dict[str, Template]
    parser: Callable[[str], Parsed] | None = None
    score_range: tuple[float, float] | None = None
    bins: tuple[str, ...] = ()
    bin_of: Callable[[float], str | None] = whole_bin
    base_cue: str = ""
    answers: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def deterministic(self) -> bool:
        """One verification per generation is all it makes (no sampling, no repeats)."""
        return self.call == "loglik"

    def template(self, family: str, kind: str = "instruct") -> Template:
        """The template for task ``family`` and a verifier of model ``kind``."""
        t = self.templates.get(family) or self.templates["generic"]
        if kind == "base" and self.base_cue:
            return Template(t.method, t.family, t.text + self.base_cue)
        return t

    def verdict(self, text: str) -> tuple[float | None, str]:
        """(score or None, parse status) of one sampled output."""
        if self.parser is None:
            raise GvstoreError(f"method {self.name!r} ({self.call}) parses no output text")
        got = self.parser(text)
        return (float(got.value) if isinstance(got.value, float) else None), got.status

    def loglik_answers(self, kind: str) -> tuple[str, str]:
        """(correct, incorrect) continuations scored for a verifier of model ``kind``."""
        return self.answers["base" if kind == "base" else "instruct"]

    def histogram(self, scores: Iterable[float | None]) -> dict[str, int]:
        """Counts of the non-null scores by ``bin_of``, every label of ``bins`` included."""
        out = dict.fromkeys(self.bins, 0)
        for s in scores:
            if s is None:
                continue
            label = self.bin_of(s)
            if label is not None:
                out[label] = out.get(label, 0) + 1
        return out

    def check(self) -> None:
        """Refuse a declaration the consumers cannot use (called by ``register``)."""
        if not _NAME.fullmatch(self.name) or self.name in _SPEC_WORDS:
            raise GvstoreError(f"verification method name {self.name!r} must be lower-case "
                               "letters, digits and _ (a word of filter specs and folder "
                               f"names), not one of {', '.join(_SPEC_WORDS)}")
        if self.call not in CALL_KINDS:
            raise GvstoreError(f"method {self.name!r}: call kind must be one of "
                               f"{', '.join(CALL_KINDS)}, got {self.call!r}")
        if "generic" not in self.templates:
            raise GvstoreError(f"method {self.name!r} needs a 'generic' template")
        fields = (("{solution_a}", "{solution_b}") if self.call == "pairwise"
                  else ("{solution}",))
        for fam, t in self.templates.items():
            missing = [f for f in ("{problem}", *fields) if f not in t.text]
            if missing or t.method != self.name or t.family != fam:
                raise GvstoreError(f"method {self.name!r}: template {fam!r} must be its own "
                                   f"and hold {', '.join(('{problem}', *fields))}")
        if self.call != "loglik" and self.parser is None:
            raise GvstoreError(f"method {self.name!r} ({self.call}) needs a parser")
        if self.call == "loglik" and "instruct" not in self.answers:
            raise GvstoreError(f"method {self.name!r} (loglik) needs answers for 'instruct'")
