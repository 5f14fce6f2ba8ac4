"""Filter spec grammar: canonical printing, round trips, and errors that point at the fault."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gvstore.analysis.specs import (
    Combine,
    Leaf,
    Mean,
    Rule,
    SpecError,
    methods_of,
    parse,
    parse_template,
    score_methods,
    with_value,
)
from gvstore.errors import GvstoreError


@pytest.mark.parametrize("text, canonical", [
    ("mc:quantile=0.8", "mc:quantile=0.8"),
    ("mc:tau=0.7", "mc:tau=0.7"),
    ("cot_score:tau=8", "cot_score:tau=8"),
    ("cot_score:tau=8.0", "cot_score:tau=8"),
    ("cot_binary:tau=1", "cot_binary:tau=1"),
    ("mc:exp=0.5", "mc:exp=0.5"),
    ("tournament:rounds=5", "tournament:rounds=5"),
    ("cot_score:tau=8, nulls=keep", "cot_score:tau=8,nulls=keep"),
    ("cot_score:nulls=keep,tau=8", "cot_score:tau=8,nulls=keep"),
    ("cot_score:tau=8,nulls=reject", "cot_score:tau=8"),
    ("and(mc:quantile=0.8, cot_binary:tau=1)", "and(mc:quantile=0.8,cot_binary:tau=1)"),
    ("or( cot_score:tau=8,nulls=keep , mc:exp=2 )", "or(cot_score:tau=8,nulls=keep,mc:exp=2)"),
    ("mean(mc, cot_score):quantile=0.8", "mean(mc,cot_score):quantile=0.8"),
    ("and(or(mc:tau=.5,cot_binary:tau=1),tournament:rounds=2)",
     "and(or(mc:tau=0.5,cot_binary:tau=1),tournament:rounds=2)"),
    ("mc:tau=-1e-5", "mc:tau=-1e-05"),
])
def test_canonical_form(text: str, canonical: str) -> None:
    spec = parse(text)
    assert str(spec) == canonical
    assert parse(canonical) == spec


def test_structure() -> None:
    spec = parse("and(mean(mc,cot_score):quantile=0.8,cot_binary:tau=1,nulls=keep)")
    assert spec == Combine("and", (
        Mean(("mc", "cot_score"), Rule("quantile", 0.8)),
        Leaf("cot_binary", Rule("tau", 1.0), keep_nulls=True),
    ))
    assert methods_of(spec) == ("cot_binary", "cot_score", "mc")


@pytest.mark.parametrize("text, pos, words", [
    ("mc:quantile=1.5", 12, "between 0 and 1"),
    ("foo:tau=1", 0, "unknown method 'foo'"),
    ("mc", 2, "expected ':'"),
    ("mc:tau=", 7, "expected a number"),
    ("mc:tau=1)", 8, "unexpected ')'"),
    ("and(mc:tau=1)", 12, "at least two"),
    ("mc:tau=1,tau=2", 9, "one rule"),
    ("mc:exp=0", 7, "> 0"),
    ("mc:exp=1,nulls=keep", 19, "not to exp"),
    ("mc:rounds=2", 0, "tournament only"),
    ("tournament:tau=1", 0, "only rounds"),
    ("tournament:rounds=2.5", 18, "whole number"),
    ("mean(mc):tau=1", 7, "at least two methods"),
    ("mean(mc,tournament):tau=1", 8, "score methods"),
    ("mc:nulls=maybe,tau=1", 9, "keep or reject"),
    ("mc:colour=1", 3, "unknown option"),
    ("", 0, "expected a method"),
])
def test_errors_point_at_the_fault(text: str, pos: int, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, GvstoreError)
    assert err.pos == pos
    assert words in err.reason
    lines = str(err).splitlines()
    assert f"(at position {pos})" in lines[0]
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * pos + "^"


def test_template() -> None:
    t = parse_template("mc:quantile")
    assert t == Leaf("mc", Rule("quantile", None))
    assert str(t) == "mc:quantile"
    assert str(with_value(t, 0.25)) == "mc:quantile=0.25"
    m = parse_template("mean(mc,cot_score):tau,nulls=keep")
    assert str(with_value(m, 0.5)) == "mean(mc,cot_score):tau=0.5,nulls=keep"
    assert str(parse_template("tournament:rounds")) == "tournament:rounds"
    with pytest.raises(SpecError, match="sweep varies one rule"):
        parse_template("and(mc:tau=1,cot_score:tau=2)")
    with pytest.raises(SpecError):
        parse("mc:quantile")  # a spec (not a template) needs its value


# --- hypothesis: any spec prints to a string that parses back to it ----------------------

_values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def _leaf(draw: st.DrawFn) -> Leaf:
    method = draw(st.sampled_from(("mc", "cot_binary", "cot_score", "tournament")))
    if method == "tournament":
        return Leaf(method, Rule("rounds", float(draw(st.integers(0, 12)))),
                    draw(st.booleans()))
    kind = draw(st.sampled_from(("quantile", "tau", "exp")))
    if kind == "quantile":
        value = draw(st.floats(min_value=0.0, max_value=1.0))
    elif kind == "exp":
        value = draw(st.floats(min_value=1e-6, max_value=1e6))
    else:
        value = draw(_values)
    keep = draw(st.booleans()) if kind != "exp" else False
    return Leaf(method, Rule(kind, value), keep)


@st.composite
def _mean(draw: st.DrawFn) -> Mean:
    methods = draw(st.lists(st.sampled_from(score_methods()), min_size=2, max_size=3,
                            unique=True))
    kind = draw(st.sampled_from(("quantile", "tau")))
    value = draw(st.floats(0.0, 1.0))
    return Mean(tuple(methods), Rule(kind, value), draw(st.booleans()))


_specs = st.recursive(
    st.one_of(_leaf(), _mean()),
    lambda inner: st.builds(
        Combine, st.sampled_from(("and", "or")),
        st.lists(inner, min_size=2, max_size=3).map(tuple)),
    max_leaves=6,
)


@given(_specs)
def test_round_trip(spec: Leaf | Mean | Combine) -> None:
    text = str(spec)
    again = parse(text)
    assert again == spec
    assert str(again) == text
    # Whitespace between tokens is allowed and does not change the spec.
    spaced = text.replace(",", " , ").replace("(", "( ").replace(")", " )")
    assert parse(spaced) == spec


@pytest.mark.parametrize("digit", ["\u0663", "\u06f3", "\u0969", "\uff13", "\U0001d7db"])
def test_numbers_are_ascii_digits_only(digit: str) -> None:
    """``float('٣')`` is 3.0; a spec must not read it as a number (issue 12)."""
    with pytest.raises(SpecError, match="expected a number after tau="):
        parse(f"mc:tau={digit}")
    with pytest.raises(SpecError, match="after a complete spec") as exc:
        parse(f"mc:quantile=0.{digit}")  # 0. is the number; the digit is left over
    assert exc.value.pos == len("mc:quantile=0.")


def test_nesting_is_bounded_before_the_recursion_limit() -> None:
    from gvstore.analysis.specs import MAX_DEPTH

    def nested(depth: int) -> str:
        return "and(" * depth + "mc:tau=1" + ",mc:tau=1)" * depth

    assert str(parse(nested(MAX_DEPTH))) == nested(MAX_DEPTH)
    with pytest.raises(SpecError, match=f"nest at most {MAX_DEPTH} deep") as exc:
        parse(nested(MAX_DEPTH + 1))
    assert exc.value.pos == 4 * (MAX_DEPTH + 1)
    with pytest.raises(SpecError, match="at most 4096 characters"):
        parse(nested(3000))  # was a RecursionError


def test_spec_length_is_bounded() -> None:
    with pytest.raises(SpecError, match="this one 5000"):
        parse("mc:tau=" + "1" * 4993)


# --- learned(...) (issue 15): grammar, canonical form, round trips, errors ----------------

@pytest.mark.parametrize("text, canonical", [
    ("learned(lr,mc,cot_score)", "learned(lr,mc,cot_score):tau=0.5"),
    ("learned( nb , mc ):quantile=0.8", "learned(nb,mc):quantile=0.8"),
    ("learned(lr,mc,cot_score):seed=0,norm=rank,folds=5,tau=0.5",
     "learned(lr,mc,cot_score):tau=0.5"),
    ("learned(lr,cot_score,mc):folds=3,norm=z,seed=7,exp=0.1",
     "learned(lr,cot_score,mc):exp=0.1,norm=z,folds=3,seed=7"),
    ("and(learned(lr,mc,cot_score):tau=0.6,folds=3,mc:tau=0.5)",
     "and(learned(lr,mc,cot_score):tau=0.6,folds=3,mc:tau=0.5)"),
    ("or(learned(nb,mc),cot_binary:tau=1)", "or(learned(nb,mc):tau=0.5,cot_binary:tau=1)"),
])
def test_learned_canonical_form(text: str, canonical: str) -> None:
    from gvstore.analysis.specs import canonical as canon
    from gvstore.analysis.specs import needs_labels

    spec = parse(text)
    assert str(spec) == canon(text) == canonical
    assert parse(canonical) == spec and needs_labels(spec)
    assert not needs_labels(parse("and(mean(mc,cot_score):tau=1,mc:tau=1)"))


def test_learned_structure() -> None:
    from gvstore.analysis.specs import Learned

    spec = parse("learned(nb,mc,cot_score):quantile=0.7,norm=minmax,folds=4,seed=9")
    assert spec == Learned(("mc", "cot_score"), Rule("quantile", 0.7), False, "nb", "minmax",
                           4, 9)
    assert spec != Mean(("mc", "cot_score"), Rule("quantile", 0.7))
    assert methods_of(spec) == ("cot_score", "mc")
    t = parse_template("learned(lr,mc,cot_score):quantile")
    assert isinstance(t, Learned) and str(with_value(t, 0.25)) == \
        "learned(lr,mc,cot_score):quantile=0.25"


@pytest.mark.parametrize("text, pos, words", [
    ("learned(xx,mc)", 8, "takes a model (lr, nb)"),
    ("learned(lr)", 10, "expected ','"),
    ("learned(lr,mc):nulls=keep", 15, "takes no nulls="),
    ("learned(lr,mc):folds=1", 21, "whole number from 2 to 1000"),
    ("learned(lr,mc):folds=2.0", 21, "whole number"),
    ("learned(lr,mc):seed=-1", 20, "whole number from 0"),
    ("learned(lr,mc):norm=foo", 20, "norm= takes rank, minmax, z, none"),
    ("learned(lr,mc,mc)", 14, "appears twice in learned"),
    ("learned(lr,tournament)", 11, "score methods"),
    ("learned(lr,mc):seed=1,seed=2", 22, "given twice"),
    ("learned(lr,mc):tau=1,quantile=1", 21, "one rule"),
    ("learned(lr,mc):rounds=2", 13, "tournament only"),
    ("learned(lr,mc):bogus=1", 15, "unknown option"),
])
def test_learned_errors_point_at_the_fault(text: str, pos: int, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(text)
    assert info.value.pos == pos and words in info.value.reason


@st.composite
def _learned(draw: st.DrawFn) -> Mean:
    from gvstore.analysis.specs import NORMS, Learned

    methods = draw(st.lists(st.sampled_from(score_methods()), min_size=1, max_size=3,
                            unique=True))
    kind = draw(st.sampled_from(("quantile", "tau", "exp")))
    value = draw(st.floats(0.01, 1.0))
    return Learned(tuple(methods), Rule(kind, value), False,
                   draw(st.sampled_from(("lr", "nb"))), draw(st.sampled_from(NORMS)),
                   draw(st.sampled_from((2, 3, 5, 10))),  # 5: the default, not printed
                   draw(st.integers(0, 2**32 - 1)))


@given(st.recursive(st.one_of(_leaf(), _mean(), _learned()), lambda inner: st.builds(
    Combine, st.sampled_from(("and", "or")), st.lists(inner, min_size=2, max_size=3).map(tuple)),
    max_leaves=5))
def test_round_trip_with_learned(spec: Leaf | Mean | Combine) -> None:
    text = str(spec)
    assert parse(text) == spec and str(parse(text)) == text
    assert parse(text.replace(",", " , ").replace(":", " : ")) == spec
