"""Verdict parsers: the last well-formed verdict decides, nothing is guessed, nothing raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gvstore.verifiers.parse import parse_binary, parse_choice, parse_score
from gvstore.verifiers.registry import get_method

BINARY = [
    # (output, score, status)
    ("The steps add up: 3 + 4 = 7.\nCorrectness: correct", 1.0, "ok"),
    ("3 + 4 is 8, not 7.\nCorrectness: incorrect", 0.0, "ok"),
    ("Correctness: incorrect. Then I checked again: 3 + 4 = 7 after all.", 0.0, "ok"),
    ("First guess. Correctness: incorrect\nOn reflection, Correctness: correct", 1.0, "ok"),
    ("Correctness: correct\nWait, the sum is wrong.\nCorrectness: Incorrect.", 0.0, "ok"),
    ("correctness: CORRECT", 1.0, "ok"),
    ("**Correctness:** correct", 1.0, "ok"),
    ("**Correctness**: Incorrect", 0.0, "ok"),
    ("Correctness: **correct**", 1.0, "ok"),
    ("Correctness = incorrect", 0.0, "ok"),
    ("The solution looks right to me.", None, "no_verdict"),
    ("", None, "empty"),
    ("   \n ", None, "empty"),
    ("End with Correctness: correct/incorrect", None, "bad_verdict"),
    ("Correctness: <correct>", None, "bad_verdict"),
    ("Correctness: correct or incorrect", None, "bad_verdict"),
    ("Correctness: correctly done", None, "bad_verdict"),
    ("Correctness: probably", None, "bad_verdict"),
]

SCORE = [
    ("The answer is right. Score: 9", 9.0, "ok"),
    ("Score: 3\nThe working is off by one.", 3.0, "ok"),
    ("Score: 10/10", 10.0, "ok"),
    ("Score: 7 out of 10.", 7.0, "ok"),
    ("Score: 8.5", 8.5, "ok"),
    ("score: 4", 4.0, "ok"),
    ("**Score:** 6", 6.0, "ok"),
    ("**Score**: **2**", 2.0, "ok"),
    ("Score: 2. Hmm, no. Score: 9.", 9.0, "ok"),
    ("Score: 9 then Score: 0", None, "out_of_range"),
    ("Score: 11", None, "out_of_range"),
    ("Score: 0", None, "out_of_range"),
    ("Score: -3", None, "out_of_range"),
    ("Score: 4/5", None, "out_of_range"),
    ("Score: <1..10>", None, "bad_verdict"),
    ("Score: 1..10", None, "bad_verdict"),
    ("Score: 1-10", None, "bad_verdict"),
    ("Score: 1 to 10", None, "bad_verdict"),
    ("I would give it a high score", None, "bad_verdict"),
    ("The answer 7 is right.", None, "no_verdict"),
    ("", None, "empty"),
]

CHOICE = [
    ("Solution A adds correctly.\nBetter: A", "A", "ok"),
    ("Better: B", "B", "ok"),
    ("**Better:** B", "B", "ok"),
    ("Better solution: (A)", "A", "ok"),
    ("Better: A\nActually B is right. Better: B", "B", "ok"),
    ("Solution B is better because it checks its work.", "B", "ok"),
    ("Winner: A", "A", "ok"),
    ("B", "B", "ok"),
    ("(A).", "A", "ok"),
    ("Better: a matter of taste", None, "bad_verdict"),
    ("End with Better: A or Better: B", "B", "ok"),
    ("Better: A/B", None, "bad_verdict"),
    ("A solution that adds is fine.", None, "no_verdict"),
    ("Both are wrong.", None, "no_verdict"),
    ("", None, "empty"),
]


@pytest.mark.parametrize(("text", "score", "status"), BINARY)
def test_binary(text: str, score: float | None, status: str) -> None:
    got = parse_binary(text)
    assert (got.value, got.status) == (score, status)
    assert get_method("cot_binary").verdict(text) == (score, status)


@pytest.mark.parametrize(("text", "score", "status"), SCORE)
def test_score(text: str, score: float | None, status: str) -> None:
    got = parse_score(text)
    assert (got.value, got.status) == (score, status)
    assert get_method("cot_score").verdict(text) == (score, status)


@pytest.mark.parametrize(("text", "winner", "status"), CHOICE)
def test_choice(text: str, winner: str | None, status: str) -> None:
    got = parse_choice(text)
    assert (got.value, got.status) == (winner, status)


_noise = st.text(
    alphabet=st.sampled_from(list("Correctness:incorectScoreBetterAB/0123456789.*_ \n<>-")),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), _noise))
def test_parsers_never_raise(text: str) -> None:
    b = parse_binary(text)
    assert (b.value is None) == (b.status != "ok")
    assert b.value in (None, 0.0, 1.0)
    s = parse_score(text)
    assert (s.value is None) == (s.status != "ok")
    assert s.value is None or (isinstance(s.value, float) and 1.0 <= s.value <= 10.0)
    c = parse_choice(text)
    assert (c.value is None) == (c.status != "ok")
    assert c.value in (None, "A", "B")


def test_parsers_are_linear_on_long_inputs() -> None:
    import time

    text = ("Score: " + " " * 5000 + "*" * 5000) * 20 + "Correctness:" * 2000
    t0 = time.monotonic()
    for f in (parse_binary, parse_score, parse_choice):
        f(text)
    assert time.monotonic() - t0 < 5.0
