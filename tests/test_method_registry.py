"""The verification-method registry: the built-in list and its templates are pinned, and a new
method module (here ``cot_yesno``) is accepted everywhere once registered: params validation,
filter specs, the simulator and the verify step."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from helpers import FakeBackend, StoreBuilder

from gvstore.analysis.specs import Leaf, Mean, SpecError, parse, score_methods
from gvstore.digest import digest
from gvstore.errors import GvstoreError
from gvstore.params import load, validate
from gvstore.records import Sampling, Verification
from gvstore.steps.verify import VerifySpec, run, select
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate
from gvstore.verifiers.base import Method
from gvstore.verifiers.parse import parse_binary
from gvstore.verifiers.registry import (
    get_method,
    is_method,
    method_names,
    names_text,
    names_where,
    register,
)
from gvstore.verifiers.templates import Template, get_template, per_family

REPO = Path(__file__).resolve().parents[1]
BUILTIN = ("mc", "cot_binary", "cot_score", "tournament")

MODULE = '''"""cot_yesno: a sampled verdict, "Verdict: yes" or "Verdict: no" (a test's method)."""
import re

from gvstore.verifiers.base import Method
from gvstore.verifiers.parse import Parsed
from gvstore.verifiers.registry import register
from gvstore.verifiers.templates import per_family

_VERDICT = re.compile(r"\\bverdict:\\s*(yes|no)\\b", re.IGNORECASE)
TEXT = ("Is the solution right? End with 'Verdict: yes' or 'Verdict: no'.\\n\\n"
        "Problem:\\n{problem}\\n\\nSolution:\\n{solution}")


def parse_yesno(text: str) -> Parsed:
    found = _VERDICT.findall(text)
    if not found:
        return Parsed(None, "empty" if not text.strip() else "no_verdict")
    return Parsed(1.0 if found[-1].lower() == "yes" else 0.0, "ok")


METHOD = register(Method(
    name="cot_yesno", call="sample",
    templates=per_family("cot_yesno", lambda family: TEXT, families=("generic",)),
    parser=parse_yesno, score_range=(0.0, 1.0), bins=("0", "1"),
))
'''


@pytest.fixture()
def yesno(tmp_path_factory: pytest.TempPathFactory,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The ``cot_yesno`` method module, imported (which registers it); removed afterwards."""
    from gvstore.verifiers.registry import unregister

    where = tmp_path_factory.mktemp("methods")
    (where / "gv_cot_yesno.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(where))
    try:
        yield importlib.import_module("gv_cot_yesno")
    finally:
        unregister("cot_yesno")
        sys.modules.pop("gv_cot_yesno", None)


# ---- the built-in methods (golden) ----------------------------------------------------------

def test_builtin_methods_in_order() -> None:
    assert method_names() == BUILTIN
    assert names_text() == "mc, cot_binary, cot_score or tournament"
    assert [get_method(m).call for m in BUILTIN] == ["loglik", "sample", "sample", "pairwise"]
    assert [m for m in BUILTIN if get_method(m).deterministic] == ["mc"]
    assert score_methods() == ("mc", "cot_binary", "cot_score")
    assert names_where("pairwise") == ("tournament",)
    assert get_method("cot_score").score_range == (1.0, 10.0)


def test_template_digests_unchanged() -> None:
    """Template digests go into record keys: every text stays byte for byte."""
    got = {f"{m}/{f}": t.digest for m in BUILTIN for f, t in get_method(m).templates.items()}
    for task in ("arith", "gsm8k", "nq_open", "sudoku", "xx"):
        for m in BUILTIN:
            got[f"{m}-base/{task}"] = get_template(m, task, "base").digest
    assert len(got) == 40
    assert got["cot_binary/arith"] == (
        "sha256:6c4318bc4960c958258a8f66d0a9846371de642d48c539a80d1e36811e90b3cd")
    assert got["mc/math"] == (
        "sha256:271dc69799323245257877851a2f34aa52ab15ffd32e488bf61d3f6ef846818e")
    assert got["mc-base/arith"] == (
        "sha256:570e3c2e841fb5133f9eb6dfbd98b6cb43143cfdf428cda8286e47c237a821d1")
    assert got["tournament/sudoku"] == (
        "sha256:e55f23ab48e28fc4395a3bcf6b0b726564a670c5ee3247a30bafe5c2f640f51e")
    assert digest(json.dumps(got, sort_keys=True)) == (
        "sha256:6b51547a83fab1b6497c81874c0be5d10a46420640e4232fc7d0c78af742457d")


def test_unknown_and_bad_declarations_are_one_line_errors() -> None:
    with pytest.raises(GvstoreError, match="^unknown verification method 'vote'; choose from "
                       "mc, cot_binary, cot_score, tournament$"):
        get_method("vote")
    with pytest.raises(GvstoreError, match="already registered"):
        register(get_method("mc"))
    good = per_family("x_ok", lambda f: "{problem} {solution}")
    with pytest.raises(GvstoreError, match="needs a parser"):
        register(Method(name="x_ok", call="sample", templates=good))
    with pytest.raises(GvstoreError, match="must be lower-case"):
        register(Method(name="and", call="sample", templates=good, parser=parse_binary))
    with pytest.raises(GvstoreError, match="needs a 'generic' template"):
        register(Method(name="x_ok", call="sample", parser=parse_binary,
                        templates=per_family("x_ok", lambda f: "{problem} {solution}",
                                             families=("math",))))
    with pytest.raises(GvstoreError, match="hold"):
        register(Method(name="x_ok", call="pairwise", templates=good, parser=parse_binary))
    assert not is_method("x_ok") and not is_method("and")


# ---- a new method, accepted everywhere --------------------------------------------------------

def test_new_method_is_listed_with_its_template(yesno: ModuleType) -> None:
    assert method_names() == (*BUILTIN, "cot_yesno")
    assert score_methods() == ("mc", "cot_binary", "cot_score", "cot_yesno")
    t = get_template("cot_yesno", "gsm8k")  # no math wording: its generic template
    assert t == Template("cot_yesno", "generic", yesno.TEXT)
    assert get_method("cot_yesno").verdict("I think so. Verdict: yes") == (1.0, "ok")


def _params_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"]["methods"] = ["mc", "cot_yesno"]
    raw["report"]["specs"] = ["cot_yesno:tau=1", "mean(mc,cot_yesno):quantile=0.5"]
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def test_params_refuse_an_unregistered_method(tmp_path: Path) -> None:
    with pytest.raises(GvstoreError, match="unknown method 'cot_yesno'"):
        validate(load(_params_file(tmp_path)), check_data=False)


def test_params_accept_the_new_method(tmp_path: Path, yesno: ModuleType) -> None:
    params = load(_params_file(tmp_path))
    validate(params, check_data=False)
    assert params.study.methods == ["mc", "cot_yesno"]


def test_specs_read_the_new_method(yesno: ModuleType) -> None:
    leaf = parse("cot_yesno:tau=1")
    assert isinstance(leaf, Leaf) and (leaf.method, str(leaf)) == ("cot_yesno", "cot_yesno:tau=1")
    mean = parse("mean(mc, cot_yesno):quantile=0.5")
    assert isinstance(mean, Mean) and mean.methods == ("mc", "cot_yesno")
    with pytest.raises(SpecError, match="rounds=R applies to tournament only"):
        parse("cot_yesno:rounds=2")


def test_synth_writes_the_new_method(tmp_path: Path, yesno: ModuleType) -> None:
    cfg = SynthConfig(prompts=4, samples=3, methods=("mc", "cot_yesno"), repeats=2,
                      parse_failure=0.0)
    store = Store(tmp_path)
    with store.writer("synth") as w:
        w.extend(generate(cfg))
    got = [r for r in store.iter_records(kinds=("verification",))
           if isinstance(r, Verification) and r.method == "cot_yesno"]
    assert len(got) == 4 * 3 * 2
    assert all(r.score is not None and 0.0 <= r.score <= 1.0 for r in got)
    assert {r.template for r in got} == {"synth-cot_yesno"}
    assert all(r.p_correct is None for r in got)  # a sampled method records no likelihoods


def test_verify_step_runs_the_new_method(tmp_path: Path, yesno: ModuleType) -> None:
    b = StoreBuilder(tmp_path)
    p = b.prompt("1")
    b.gens(p, 3)
    store = b.write("generate")
    fake = FakeBackend().enqueue("Looks right. Verdict: yes", "Verdict: yes, no: Verdict: no",
                                 "No idea.")
    spec = VerifySpec(method="cot_yesno", verifier="judge", verifier_digest="sha256:j",
                      backend="fake", sampling=Sampling(temperature=0.7, max_tokens=32))
    s = run(store, "verify", select(store, "t"), spec, fake.factory)
    assert (s.requested, s.made, fake.calls) == (3, 3, 3)
    recs = sorted((r for r in store.iter_records(kinds=("verification",))
                   if isinstance(r, Verification)), key=lambda r: r.raw)
    assert [(r.method, r.score, r.parse_status) for r in recs] == [
        ("cot_yesno", 1.0, "ok"), ("cot_yesno", None, "no_verdict"), ("cot_yesno", 0.0, "ok")]
    tpl = get_template("cot_yesno", "t")
    assert {r.template for r in recs} == {tpl.digest}
    assert all(r.sampling is not None for r in recs)
    assert fake.prompts[0] == tpl.render(problem="question 1", solution="answer 1/g/0")
    assert s.histogram == {"0": 1, "1": 1}
    assert s.statuses == {"ok": 2, "no_verdict": 1}
