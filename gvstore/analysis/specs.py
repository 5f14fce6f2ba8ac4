"""Filter specs: short strings that name how verifier scores become weights.

Grammar (whitespace between tokens is allowed and dropped; ``str(spec)`` prints the canonical
form, with no spaces, which parses back to an equal spec)::

    spec    := leaf | mean | learned | combo
    leaf    := METHOD ":" options                      mc:quantile=0.8   cot_score:tau=8,nulls=keep
    mean    := "mean(" METHOD ("," METHOD)+ ")" ":" options     mean(mc,cot_score):quantile=0.8
    learned := "learned(" ("lr" | "nb") ("," METHOD)+ ")" [":" rule/norm=N/folds=K/seed=S,...]
    combo   := ("and" | "or") "(" spec ("," spec)+ ")"         and(mc:quantile=0.8,cot_binary:tau=1)
    options := rule ["," "nulls=" ("reject" | "keep")]       (either order; canonical: rule first)
    rule    := "quantile=" Q | "tau=" T | "exp=" BETA | "rounds=" R
    METHOD  := a registered verification method: mc | cot_binary | cot_score | tournament

* ``quantile=Q`` (0 <= Q <= 1): keep s_i >= the per-prompt Q-quantile of the scores;
* ``tau=T``: keep s_i >= T;
* ``exp=BETA`` (BETA > 0): weight exp(s_i / BETA);
* ``rounds=R`` (whole R >= 0, ``tournament`` only (a pairwise method), which takes no other
  rule): keep the survivors of R rounds of single elimination;
* ``nulls=keep``: a sample with no score (the verifier's output did not parse) is kept (w = 1)
  instead of rejected (w = 0, the default, which the canonical form omits); not with ``exp``;
* ``mean(...)``: the mean of the methods' per-prompt rank-normalised scores, then the rule;
* ``learned(lr|nb,m1,...)``: a logistic regression's or naive Bayes' cross-fitted P(correct)
  (``gvstore.analysis.learned``), then the rule (default ``tau=0.5``; canonical: the rule, then
  norm, folds, seed unless rank, 5, 0); no ``nulls=`` (nulls are features);
* ``and(...)``: the product of the parts' weights; ``or(...)``: their maximum.

Inside ``and(...)``/``or(...)`` a comma followed by ``NAME=`` continues the options of the part
before it; any other comma starts the next part. ``docs/metrics.md`` gives the exact semantics.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from gvstore.errors import GvstoreError
from gvstore.verifiers.registry import get_method, is_method, method_names, names_where

RULES = ("quantile", "tau", "exp", "rounds")
MODELS = ("lr", "nb")
NORMS = ("rank", "minmax", "z", "none")
LEARNED = {"norm": "rank", "folds": 5, "seed": 0}  # learned(...)'s other options, defaults
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
"""ASCII digits only: ``float()`` would read ``٣`` (an Arabic-Indic three) as 3."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
MAX_DEPTH = 16
"""The deepest nesting of and(...)/or(...) (a real spec needs 2 or 3)."""
MAX_LENGTH = 4096
"""The longest spec text."""


def score_methods() -> tuple[str, ...]:
    """The methods that give each generation a score (every call kind but pairwise)."""
    return names_where("sample", "loglik")


def _rounds_only() -> str:
    return f"rounds=R applies to {', '.join(names_where('pairwise'))} only"


class SpecError(GvstoreError):
    """A filter spec that does not parse; the message points at the offending character."""

    def __init__(self, text: str, pos: int, reason: str) -> None:
        self.text = text
        self.pos = pos
        self.reason = reason
        super().__init__(
            f"bad filter spec: {reason} (at position {pos})\n  {text}\n  {' ' * pos}^"
        )


def fmt_number(x: float) -> str:
    """The canonical text of a rule value: whole numbers without a point, else ``repr``."""
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(float(x))


@dataclass(frozen=True)
class Rule:
    """How a score becomes a weight. ``value`` is None only in a sweep template."""

    kind: str
    value: float | None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={fmt_number(self.value)}"


def _options(rule: Rule, keep_nulls: bool) -> str:
    return f"{rule},nulls=keep" if keep_nulls else str(rule)


@dataclass(frozen=True)
class Leaf:
    """One verification method and its rule."""

    method: str
    rule: Rule
    keep_nulls: bool = False

    def __str__(self) -> str:
        return f"{self.method}:{_options(self.rule, self.keep_nulls)}"


@dataclass(frozen=True)
class Mean:
    """The mean of several methods' per-prompt rank-normalised scores, then a rule."""

    methods: tuple[str, ...]
    rule: Rule
    keep_nulls: bool = False

    def __str__(self) -> str:
        return f"mean({','.join(self.methods)}):{_options(self.rule, self.keep_nulls)}"


@dataclass(frozen=True)
class Combine:
    """``and`` (product of weights) or ``or`` (maximum of weights) of two or more specs."""

    op: str
    parts: tuple[Spec, ...]

    def __str__(self) -> str:
        return f"{self.op}({','.join(str(p) for p in self.parts)})"


@dataclass(frozen=True)
class Learned(Mean):
    """``learned(MODEL,m1,...)``: a model's cross-fitted P(correct), then a rule; a ``Mean`` to
    code that reads a spec's methods and rule (sweeps), with the model's scores as its score."""

    model: str = "lr"
    norm: str = "rank"
    folds: int = 5
    seed: int = 0

    def __str__(self) -> str:
        opts = [str(self.rule)] + [f"{k}={getattr(self, k)}" for k, v in LEARNED.items()
                                   if getattr(self, k) != v]
        return f"learned({self.model},{','.join(self.methods)}):{','.join(opts)}"


Spec = Leaf | Mean | Combine


def needs_labels(spec: Spec) -> bool:
    """Whether a spec's weights are trained on ground truth (it holds a ``learned(...)``)."""
    if isinstance(spec, Combine):
        return any(needs_labels(p) for p in spec.parts)
    return isinstance(spec, Learned)


def methods_of(spec: Spec) -> tuple[str, ...]:
    """The verification methods a spec reads, sorted, without repeats."""
    if isinstance(spec, Leaf):
        return (spec.method,)
    if isinstance(spec, Mean):
        return tuple(sorted(set(spec.methods)))
    return tuple(sorted({m for p in spec.parts for m in methods_of(p)}))


def with_value(spec: Leaf | Mean, value: float) -> Leaf | Mean:
    """The same spec with its rule's value set (used by sweeps)."""
    return replace(spec, rule=Rule(spec.rule.kind, float(value)))


class _Parser:
    def __init__(self, text: str, allow_open: bool) -> None:
        self.text = text
        self.pos = 0
        self.allow_open = allow_open
        self.depth = 0
        if len(text) > MAX_LENGTH:
            raise SpecError(text[:40] + "...", 0, f"a spec is at most {MAX_LENGTH} characters, "
                            f"this one {len(text)}")

    def fail(self, reason: str, pos: int | None = None) -> SpecError:
        return SpecError(self.text, self.pos if pos is None else pos, reason)

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str, what: str) -> None:
        if self.peek() != ch:
            got = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"
            raise self.fail(f"expected {ch!r} {what}, found {got}")
        self.pos += 1

    def name(self, what: str) -> tuple[str, int]:
        self.skip()
        m = _NAME.match(self.text, self.pos)
        if m is None:
            got = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"
            raise self.fail(f"expected {what}, found {got}")
        self.pos = m.end()
        return m.group(), m.start()

    def lookahead_option(self) -> bool:
        """After a comma: does ``NAME =`` follow (an option) rather than a new spec?"""
        save = self.pos
        try:
            self.pos += 1  # the comma
            self.skip()
            m = _NAME.match(self.text, self.pos)
            if m is None:
                return False
            self.pos = m.end()
            return self.peek() == "=" or (
                self.allow_open and m.group() in RULES and self.peek() in (",", ")", "")
            )
        finally:
            self.pos = save

    def spec(self, top: bool) -> Spec:
        word, start = self.name("a method, 'mean', 'learned', 'and' or 'or'")
        if word in ("and", "or"):
            return self.combo(word)
        if word in ("mean", "learned"):
            return self.mean(top, word == "learned")
        if not is_method(word):
            raise self.fail(f"unknown method {word!r}; choose from {', '.join(method_names())}",
                            start)
        self.expect(":", f"after {word!r} (a method needs a rule, e.g. {word}:tau=0.5)")
        rule, keep = self.options(top, word)
        pairwise = get_method(word).call == "pairwise"
        if pairwise and rule.kind != "rounds":
            raise self.fail(f"{word} takes only rounds=R", start)
        if not pairwise and rule.kind == "rounds":
            raise self.fail(_rounds_only(), start)
        return Leaf(word, rule, keep)

    def combo(self, op: str) -> Combine:
        self.expect("(", f"after {op!r}")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"and(...)/or(...) nest at most {MAX_DEPTH} deep")
        parts = [self.spec(False)]
        while self.peek() == ",":
            self.pos += 1
            parts.append(self.spec(False))
        self.depth -= 1
        start = self.pos
        self.expect(")", f"to close {op}(")
        if len(parts) < 2:
            raise self.fail(f"{op}(...) needs at least two specs", start)
        return Combine(op, tuple(parts))

    def mean(self, top: bool, learned: bool = False) -> Mean:
        owner = "learned" if learned else "mean"
        self.expect("(", f"after {owner!r}")
        model, start = self.name("a model (lr or nb)") if learned else ("", 0)
        if learned and model not in MODELS:
            raise self.fail(f"learned(...) takes a model ({', '.join(MODELS)}) first", start)
        if learned:
            self.expect(",", "after the model (learned(lr,mc,...))")
        methods: list[str] = []
        while True:
            word, start = self.name("a method")
            scored = score_methods()
            if word not in scored:
                raise self.fail(f"{owner}(...) takes score methods ({', '.join(scored)}), "
                                f"not {word!r}", start)
            if word in methods:
                raise self.fail(f"method {word!r} appears twice in {owner}(...)", start)
            methods.append(word)
            if self.peek() != ",":
                break
            self.pos += 1
        start = self.pos
        self.expect(")", f"to close {owner}(")
        if len(methods) < 2 and not learned:
            raise self.fail("mean(...) needs at least two methods", start)
        extra: dict[str, object] = {}
        rule, keep = Rule("tau", 0.5), False
        if not learned or self.peek() == ":":
            self.expect(":", "after mean(...) (it needs a rule, e.g. :quantile=0.8)")
            rule, keep = self.options(top, owner, extra if learned else None)
        if rule.kind == "rounds":
            raise self.fail(_rounds_only(), start)
        if learned:
            return Learned(tuple(methods), rule, False, model,
                           **{**LEARNED, **extra})  # type: ignore[arg-type]
        return Mean(tuple(methods), rule, keep)

    def options(self, top: bool, owner: str,
                extra: dict[str, object] | None = None) -> tuple[Rule, bool]:
        """A rule and nulls=; for ``learned`` a rule and the ``extra`` options (set here)."""
        rule: Rule | None = None
        keep: bool | None = None
        while True:
            key, start = self.name("an option (quantile, tau, exp, rounds or nulls)")
            if self.peek() != "=":
                if self.allow_open and top and key in RULES and rule is None:
                    rule = Rule(key, None)
                else:
                    raise self.fail(f"expected '=' after {key!r}")
            else:
                self.pos += 1
                if extra is not None and key in (*LEARNED, "nulls"):
                    self.learned_value(key, start, extra)
                elif key == "nulls":
                    if keep is not None:
                        raise self.fail("nulls= given twice", start)
                    val, vstart = self.name("keep or reject")
                    if val not in ("keep", "reject"):
                        raise self.fail(f"nulls= takes keep or reject, not {val!r}", vstart)
                    keep = val == "keep"
                elif key in RULES:
                    if rule is not None:
                        raise self.fail(f"{owner} takes one rule; {key}= is a second", start)
                    rule = Rule(key, self.number(key))
                else:
                    known = [*RULES, *LEARNED] if extra is not None else [*RULES, "nulls"]
                    raise self.fail(f"unknown option {key!r}; choose from {', '.join(known)}",
                                    start)
            if self.peek() == "," and self.lookahead_option():
                self.pos += 1
                continue
            break
        rule = Rule("tau", 0.5) if rule is None and extra is not None else rule
        if rule is None:
            raise self.fail(f"{owner} needs a rule (quantile=, tau=, exp= or rounds=)")
        if keep and rule.kind == "exp":
            raise self.fail("nulls=keep applies to keep/reject rules, not to exp")
        return rule, bool(keep)

    def learned_value(self, key: str, at: int, extra: dict[str, object]) -> None:
        """Set a ``learned`` option: norm=NAME, folds=K (2..1000) or seed=S (>= 0)."""
        if key == "nulls" or key in extra:
            raise self.fail(f"{key}= given twice" if key in extra else "learned(...) takes no "
                            "nulls= (it scores every sample; nulls are features)", at)
        if key == "norm":
            val, start = self.name("a normalisation")
            if val not in NORMS:
                raise self.fail(f"norm= takes {', '.join(NORMS)}, not {val!r}", start)
            extra[key] = val
            return
        self.skip()
        start, x = self.pos, self.number(key)
        lo, hi = (2, 1000) if key == "folds" else (0, 2**32 - 1)
        if not x.is_integer() or "." in self.text[start:self.pos] or not lo <= x <= hi:
            raise self.fail(f"{key}= must be a whole number from {lo} to {hi}", start)
        extra[key] = int(x)

    def number(self, key: str) -> float:
        self.skip()
        m = _NUMBER.match(self.text, self.pos)
        if m is None:
            raise self.fail(f"expected a number after {key}=")
        start = self.pos
        self.pos = m.end()
        x = float(m.group())
        if not math.isfinite(x):
            raise self.fail(f"{key}= must be finite", start)
        if key == "quantile" and not 0.0 <= x <= 1.0:
            raise self.fail(f"quantile= must be between 0 and 1, got {m.group()}", start)
        if key == "exp" and x <= 0:
            raise self.fail(f"exp= (a temperature) must be > 0, got {m.group()}", start)
        if key == "rounds" and (not x.is_integer() or x < 0 or "." in m.group()):
            raise self.fail(f"rounds= must be a whole number >= 0, got {m.group()}", start)
        return x


def parse(text: str) -> Spec:
    """Parse a filter spec; raises ``SpecError`` pointing at the offending part."""
    p = _Parser(text, allow_open=False)
    spec = p.spec(True)
    if p.peek():
        raise p.fail(f"unexpected {p.text[p.pos]!r} after a complete spec")
    return spec


def parse_template(text: str) -> Leaf | Mean:
    """Parse a sweep template: a leaf or mean whose rule may leave out its value (``mc:tau``).

    A value given anyway is kept (a sweep replaces it).
    """
    p = _Parser(text, allow_open=True)
    spec = p.spec(True)
    if p.peek():
        raise p.fail(f"unexpected {p.text[p.pos]!r} after a complete spec")
    if isinstance(spec, Combine):
        raise SpecError(text, 0, "a sweep varies one rule: give a method or mean(...), "
                        "not and(...)/or(...)")
    return spec


def canonical(text: str) -> str:
    """The canonical form of a spec string."""
    return str(parse(text))
