"""Graders that credited wrong answers (issue 12, item 2), and lm-eval's rules kept apart.

Every case is hand-checked: a wrong answer must grade 0, a right one 1. The lm-eval graders
(``<task>:lm-eval``) keep the harness's own behaviour, quirks included, for comparable numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.records import Generation, Grade
from gvstore.steps.grade import grade_key, grade_store
from gvstore.store import Store
from gvstore.tasks import get_task
from gvstore.tasks.base import Item
from gvstore.tasks.math_task import normalize_final_answer
from gvstore.tasks.registry import list_variants


def final(x: str) -> str:
    return f"Some work.\nFinal Answer: The final answer is ${x}$. I hope it is correct."


def final_raw(x: str) -> str:
    return f"Some work.\nFinal Answer: The final answer is {x}. I hope it is correct."


def grades(task: str, text: str, ref: str, variant: str | None = None) -> tuple[float, float]:
    r = get_task(task, variant=variant).grade(text, ref)
    return r.strict, r.flexible


# ---- MATH: letters and words are strings, not commutative products -------------------------

@pytest.mark.parametrize(("pred", "ref", "want"), [
    ("ECA", "ACE", 0), ("WV", "VW", 0), ("DC", "CD", 0), ("FCA", r"\text{ACF}", 0),
    ("KAME", "MAKE", 0), (r"\text{Mondya}", r"\text{Monday}", 0),
    (r"\text{seat}", r"\text{east}", 0), (r"\text{ odd}", r"\text{even}", 0),
    ("(B)", r"\text{(C)}", 0), ("c", "C", 0),
    # right answers still right
    ("ACF", r"\text{ACF}", 1), ("VW", "VW", 1), (r"\text{Monday}", r"\text{Monday}", 1),
    ("C", r"\text{(C)}", 1), (r"\textbf{(C)}", r"\text{(C)}", 1), ("east", r"\text{east}", 1),
])
def test_math_letters_compare_as_strings(pred: str, ref: str, want: int) -> None:
    assert grades("math", final(pred), ref) == (want, want)


def test_math_letters_were_products_under_lm_eval() -> None:
    """lm-eval hands letters to SymPy: ``ECA`` = ``ACE`` there, kept in its own grader."""
    assert grades("math", final("ECA"), "ACE", "lm-eval") == (1, 1)


# ---- hedges: two different answers are no answer ---------------------------------------------

HEDGES = [
    final_raw("$3$ or $7$"), final_raw("$3$, or $7$"), final_raw("$3$ or possibly $7$"),
    final_raw("either $3$ or $7$"), final_raw("$3$ (or $7$)"), final_raw("$3$ or maybe $7$"),
    final_raw("$x = 3$ or $x = 7$"), final_raw("$3$ OR $7$"), final_raw("$3$ and/or $7$"),
    final_raw("$3$; or perhaps $7$"),
    final("3 or 7"), final(r"3 \text{ or } 7"), final(r"3\text{or}7"), final(r"3 \mbox{ or } 7"),
    final(r"3 \textrm{ or } 7"), final(r"3 \quad\text{or}\quad 7"), final(r"x=3 \text{ or } x=7"),
    final(r"3 \text{, or } 7"), final(r"\frac{6}{2} \text{ or } 7"),
    r"So the answer is $\boxed{3}$ or $\boxed{7}$.",
    r"So the answer is $\boxed{3 \text{ or } 7}$.",
    r"So the answer is \boxed{3}, or possibly \boxed{7}.",
    r"So the answer is $\boxed{3}$ (or $\boxed{7}$).",
    "We get $3$ or $7$.", "We get either $x=3$ or $x=7$",
    "We get $3$ or $7$ at the end", r"We get $3 \text{ or } 7$",
]


@pytest.mark.parametrize("text", HEDGES)
@pytest.mark.parametrize("ref", ["3", "7"])
def test_math_hedge_is_no_answer(text: str, ref: str) -> None:
    got = get_task("math").grade(text, ref)
    assert (got.strict, got.flexible) == (0, 0), got
    assert got.extracted is not None and got.extracted.startswith("[hedge]")


@pytest.mark.parametrize(("text", "ref", "strict", "flexible"), [
    (final_raw("$3$ or $3$"), "3", 1, 1),
    (final_raw(r"$\frac{1}{2}$, or equivalently $0.5$"), "0.5", 1, 1),  # the same answer twice
    (final_raw(r"$\frac{1}{2}$, or equivalently $0.5$"), "3", 0, 0),
    (r"So $\boxed{3}$ or $\boxed{3}$", "3", 0, 1),
    (r"If $x$ is odd or $y$ is even then we get $\boxed{3}$.", "3", 0, 1),  # "or" in working
    (r"Either $x=1$ or $x=7$. Since $x>2$, we get $3$", "3", 0, 1),  # corrected, not hedged
    (final(r"\text{Dorothy}"), r"\text{Dorothy}", 1, 1),  # "or" inside a word
])
def test_math_not_a_hedge(text: str, ref: str, strict: int, flexible: int) -> None:
    assert grades("math", text, ref) == (strict, flexible)


def test_math_hedges_credited_under_lm_eval() -> None:
    """Minerva's first-``$...$`` rule, kept in the separately named grader only."""
    assert grades("math", final_raw("$3$ or $7$"), "3", "lm-eval") == (1, 1)
    assert grades("math", final_raw("$3$ or $7$"), "3") == (0, 0)


# ---- GSM8K (and arith, which shares the grader) ----------------------------------------------

@pytest.mark.parametrize("task", ["gsm8k", "arith"])
@pytest.mark.parametrize(("text", "ref", "strict", "flexible"), [
    ("The answer is 1000 or 1001.", "1000", 0, 0),  # was strict 1
    ("The answer is 1000 or 1001.", "1001", 0, 0),  # was flexible 1
    ("The answer is 1001 or 1000.", "1000", 0, 0),  # was flexible 1
    ("The answer is 1000, or possibly 1001.", "1000", 0, 0),
    ("The answer is 1000 (or 1001).", "1000", 0, 0),
    ("The answer is 1000 OR 1001.", "1000", 0, 0),
    ("So it is 1001 or 1000", "1000", 0, 0),
    ("The answer is 1000 or 1,000.", "1000", 1, 1),  # the same number twice
    ("The answer is $1000 or $1000.00.", "1000", 1, 1),
    ("It takes 2 or 3 hours each, so 5 in all. The answer is 18.", "18", 1, 1),
    ("The answer is 18. There are 2 or 3 more.", "18", 1, 0),  # flexible: last number 3
    ("The answer is .5.", "0.5", 1, 1),  # was 0: ".5" is 0.5
    ("The answer is -.5.", "-0.5", 1, 1),
    ("It is .5", "0.5", 0, 1),
    ("The answer is 0.5.", ".5", 1, 1),
    ("The answer is .6.", "0.5", 0, 0),
])
def test_numeric_hedges_and_bare_decimals(task: str, text: str, ref: str, strict: int,
                                          flexible: int) -> None:
    assert grades(task, text, ref) == (strict, flexible)


def test_gsm8k_hedge_extracted_names_both() -> None:
    assert get_task("gsm8k").grade("The answer is 1000 or 1001.", "1000").extracted == (
        "1000 or 1001")
    assert get_task("gsm8k").grade("So 1001 or 1000", "1000").extracted == "1001 or 1000"


@pytest.mark.parametrize(("text", "ref", "strict", "flexible"), [
    ("The answer is 1000 or 1001.", "1000", 1, 0),  # lm-eval: first match, then last number
    ("The answer is 1001 or 1000.", "1000", 0, 1),
    ("The answer is 18", "18", 0, 1),  # its trailing wildcard takes the 8: "1"
    ("The answer is $18.", "18", 0, 1),  # "$" not allowed in the strict group
    ("The answer is 18.00.", "18", 0, 0),  # strings: "18.00" is not "18"
    ("The answer is .5.", "0.5", 0, 0),
    ("The answer is 1,234.", "1234", 1, 1),
    ("The Answer is 7.", "7", 0, 1),
    ("Total: $1,000,000.50", "1000000.50", 0, 1),
    ("no number", "7", 0, 0),
])
def test_gsm8k_lm_eval_exact(text: str, ref: str, strict: int, flexible: int) -> None:
    assert grades("gsm8k", text, ref, "lm-eval") == (strict, flexible)


# ---- MATH: lists are not numbers (Minerva's comma rule) --------------------------------------

@pytest.mark.parametrize(("pred", "ref", "want"), [
    ("2,3", "23", 0), ("23", "2,3", 0), ("4,61,415", "4,6,14,15", 0), ("461415", "4,6,14,15", 0),
    ("1, 3", "1,3", 1), ("12,10,6", "12, 10, 6", 1), ("3,1", "1,3", 0),
    ("45, 135", r"45^\circ, 135^\circ", 1), (r"\frac{1}{2}, 3", "0.5,3", 1),
    ("1,000", "1000", 1), ("1000", "1,000", 1), ("61,328", "61,328", 1), ("61328", "61,328", 1),
    (r"\$115,000", r"\$115,000", 1), ("115000", r"\$115,000", 1), ("1,000.5", "1000.5", 1),
    ("10080", r"10,\!080", 1),
])
def test_math_lists_keep_their_commas(pred: str, ref: str, want: int) -> None:
    assert grades("math", final(pred), ref) == (want, want)


def test_minerva_comma_rule_kept_for_lm_eval() -> None:
    assert normalize_final_answer("2,3") == "23"
    assert normalize_final_answer("2,3", minerva_commas=False) == "2,3"
    assert normalize_final_answer("1,000", minerva_commas=False) == "1000"
    assert grades("math", final("2,3"), "23", "lm-eval") == (1, 1)


@pytest.mark.parametrize(("pred", "ref", "want"), [
    (".5", "0.5", 1), ("0.5", ".5", 1), ("-.5", r"-\frac{1}{2}", 1), (".50", r"\frac12", 1),
    (".6", "0.5", 0), ("0.50", "0.5", 1), ("1.5", "1.50", 1), ("2.5", "25", 0),
])
def test_math_bare_decimals(pred: str, ref: str, want: int) -> None:
    assert grades("math", final(pred), ref) == (want, want)


def test_math_lm_eval_has_no_string_match() -> None:
    """lm-eval's exact_match is SymPy only: no final-answer line, or no parse, is 0."""
    assert grades("math", final("24"), "24", "lm-eval") == (1, 1)
    assert grades("math", final(r"\frac{1}{2}"), "0.5", "lm-eval") == (1, 1)
    assert grades("math", r"So $\boxed{24}$.", "24", "lm-eval") == (0, 0)
    assert grades("math", final("[2,5)"), "[2,5)", "lm-eval") == (0, 0)
    assert grades("math", final("[2,5)"), "[2,5)") == (1, 1)


# ---- the separately named graders in the registry and the grade step -------------------------

def test_variant_registry() -> None:
    assert list_variants() == ["lm-eval"]
    assert get_task("gsm8k", variant="lm-eval").grader_id == "gsm8k:lm-eval"
    assert get_task("math", variant="lm-eval").grader_id == "math:lm-eval"
    assert get_task("gsm8k").grader_id == "gsm8k"
    with pytest.raises(GvstoreError, match="task 'arith' has no grader 'lm-eval'; tasks that "
                                           "have it: gsm8k, math"):
        get_task("arith", variant="lm-eval")
    with pytest.raises(GvstoreError, match="unknown grader 'nope'; graders: lm-eval"):
        get_task("gsm8k", variant="nope")
    with pytest.raises(GvstoreError, match="unknown task 'nope'"):
        get_task("nope", variant="lm-eval")


def _gsm8k_store(root: Path) -> tuple[Store, list[Generation]]:
    b = StoreBuilder(root, "gsm8k")
    # A prompt record made here (the 4-shot rendering would need the shared GSM8K files).
    item = _item()
    prompt = b.prompt(item.item_id, text=item.question, reference=item.reference)
    texts = ["The answer is 1000 or 1001.", "The answer is 18", "The answer is 1000."]
    gens = [b.generation(prompt, i, t, model="m", seed=0) for i, t in enumerate(texts)]
    return b.write("generate"), gens


def _item() -> Item:
    return Item("test-00000", "How many?", "1000")


def test_grade_store_lm_eval_is_separate(tmp_path: Path) -> None:
    store, gens = _gsm8k_store(tmp_path / "s")
    own = grade_store(store, "gsm8k")
    lm = grade_store(store, "gsm8k", grader="lm-eval")
    assert own.written == 3 and lm.written == 3
    got = {(g.grader, g.grader_version, g.generation_id): (g.strict, g.flexible)
           for g in store.iter_records(kinds=("grade",)) if isinstance(g, Grade)}
    want = {
        ("gsm8k", "2", gens[0].id): (0.0, 0.0), ("gsm8k:lm-eval", "1", gens[0].id): (1.0, 0.0),
        ("gsm8k", "2", gens[1].id): (0.0, 0.0), ("gsm8k:lm-eval", "1", gens[1].id): (0.0, 0.0),
        ("gsm8k", "2", gens[2].id): (1.0, 1.0), ("gsm8k:lm-eval", "1", gens[2].id): (1.0, 1.0),
    }
    assert got == want
    assert grade_store(store, "gsm8k", grader="lm-eval").written == 0
    assert grade_key(gens[0].id, get_task("gsm8k")) != grade_key(
        gens[0].id, get_task("gsm8k", variant="lm-eval"))


def test_cli_grade_unknown_grader_is_one_line(tmp_path: Path) -> None:
    store, _ = _gsm8k_store(tmp_path / "s")
    res = CliRunner().invoke(app, ["--store", str(store.root), "grade", "--grader", "nope",
                                   "-q"])
    assert res.exit_code == 1, res.output
    assert "unknown grader 'nope'; graders: lm-eval" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["--store", str(store.root), "grade", "--grader", "lm-eval",
                                   "--task", "gsm8k", "--json"])
    assert res.exit_code == 0, res.output
    assert '"written": 3' in res.output
