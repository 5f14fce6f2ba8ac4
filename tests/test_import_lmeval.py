"""``gvstore import lm-eval`` on files lm-evaluation-harness 0.4.13 itself wrote.

``tests/data/lmeval/output/`` is one real ``lm_eval run --log_samples`` (README.md there has
the command): the task ``gsm8k_local.yaml`` (5 GSM8K-format docs, 4 sampled repeats each,
lm-eval's gsm8k_cot filters ``strict-match`` and ``flexible-extract`` without take_first, and
``exact_match`` with ``ignore_case`` and ``ignore_punctuation``) run on SmolLM2-135M. Every
expected value here is computed from the JSONL itself: ``hand_grade`` is the YAML's
exact_match on one repeat's filtered answer, checked against the per-doc value lm-eval
logged (the mean over the repeats).

lm-eval has no verifier, so for ``gvstore gap`` the test writes one ``mc`` verification per
imported generation itself (a toy verifier preferring short answers: score 100 / (100 + the
response's length)), as sealed records in a store folder of their own, the shape
``gvstore verify`` writes. ``gvstore import table`` cannot add them: its generations carry the
table file's digest, so the slot guard refuses a second sample 0 under the same generator (the
test shows the refusal).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gvstore.cli.app import app as gvstore_app
from gvstore.records import Generation, Grade, Prompt, Verification, seal
from gvstore.store import Store

DATA = Path(__file__).parent / "data" / "lmeval"
RUN = next((DATA / "output").glob("*/samples_gsm8k_local_*.jsonl")).parent
SAMPLES = next(RUN.glob("samples_*.jsonl"))
RESULTS = next(RUN.glob("results_*.json"))
MORE = next((DATA / "output-more").glob("*/results_*.json")).parent  # take_first, multiple choice
GEN = "smollm2-135m-instruct"


def lines(path: Path = SAMPLES) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def by_doc(rows: list[dict[str, Any]]) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["doc_id"], {})[r["filter"]] = r
    return out


def hand_grade(answer: str, target: str) -> float:
    """gsm8k_local.yaml's exact_match: ignore_case, ignore_punctuation, no regexes."""
    drop = str.maketrans("", "", string.punctuation)
    return float(answer.lower().translate(drop) == target.lower().translate(drop))


def hand(rows: list[dict[str, Any]]) -> dict[int, dict[str, list[float]]]:
    """doc -> {strict, flexible: per-repeat grades}, each checked against lm-eval's value."""
    out: dict[int, dict[str, list[float]]] = {}
    for doc, f in by_doc(rows).items():
        got = {}
        for util, name in (("strict", "strict-match"), ("flexible", "flexible-extract")):
            g = [hand_grade(a, f[name]["target"]) for a in f[name]["filtered_resps"][0]]
            assert sum(g) / len(g) == pytest.approx(f[name]["exact_match"])  # lm-eval's own
            got[util] = g
        out[doc] = got
    return out


def run(store: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(gvstore_app, ["--store", str(store), *args])
    return res.exit_code, res.output


def imported(store: Path, path: Path, *extra: str) -> dict[str, Any]:
    code, out = run(store, "import", "lm-eval", str(path), "--json", *extra)
    assert code == 0, out
    got: dict[str, Any] = json.loads(out)
    return got


def n_records(store: Path) -> int:
    return len(Store(store).records()) if store.exists() else 0


def stored(store: Path, grader: str = "imported") -> dict[tuple[str, int], tuple[Any, ...]]:
    """(item id, sample index) -> (text, strict, flexible, extracted) of one grader."""
    recs = Store(store).records()
    items = {r.id: r.item_id for r in recs if isinstance(r, Prompt)}
    gens = {r.id: r for r in recs if isinstance(r, Generation)}
    out = {}
    for g in (r for r in recs if isinstance(r, Grade) and r.grader == grader):
        gen = gens[g.generation_id]
        out[items[gen.prompt_id], gen.sample_index] = (gen.text, g.strict, g.flexible,
                                                       g.extracted)
    return out


def pass_at(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return gvstore_app


def test_grades_and_passk_equal_the_jsonl(tmp_path: Path) -> None:
    rows = lines()
    expect = hand(rows)
    assert len(rows) == 10 and sorted(expect) == [0, 1, 2, 3, 4]
    store = tmp_path / "st"
    got = imported(store, SAMPLES)
    assert (got["rows"], got["prompts"], got["samples"], got["skipped"]) == (10, 5, 20, 0)
    assert got["added"] == {"prompt": 5, "generation": 20, "grade": 20}
    assert (got["task"], got["generator"]) == ("gsm8k_local", GEN)
    have = stored(store)
    docs = by_doc(rows)
    for doc, g in expect.items():
        strict = docs[doc]["strict-match"]
        for i, text in enumerate(strict["resps"][0]):
            s_ans = strict["filtered_resps"][0][i]
            f_ans = docs[doc]["flexible-extract"]["filtered_resps"][0][i]
            want_x = f_ans if s_ans == "[invalid]" else s_ans
            assert have[str(doc), i] == (text, g["strict"][i], g["flexible"][i], want_x)
        # per-prompt accuracy = lm-eval's per-doc exact_match of each filter
        for util, name in (("strict", "strict-match"), ("flexible", "flexible-extract")):
            acc = sum(have[str(doc), i][1 if util == "strict" else 2] for i in range(4)) / 4
            assert acc == pytest.approx(docs[doc][name]["exact_match"])
    # strict and flexible really differ in this file (doc 3 repeat 1: no "The answer is")
    assert expect[3]["strict"][1] == 0.0 and expect[3]["flexible"][1] == 1.0
    for util in ("strict", "flexible"):
        code, out = run(store, "passk", "-u", util, "--json")
        assert code == 0, out
        res = {r["k"]: r["pass_at_k"] for r in json.loads(out)["rows"]}
        assert sorted(res) == [1, 2, 4]
        for k, v in res.items():
            want = sum(pass_at(4, int(sum(g[util])), k) for g in expect.values()) / 5
            assert v == pytest.approx(want)
    # pass@1 is lm-eval's own aggregate in the results file (0.05 strict, 0.15 flexible)
    agg = json.loads(RESULTS.read_text())["results"]["gsm8k_local"]
    code, out = run(store, "passk", "--k", "1", "--json")
    assert json.loads(out)["rows"][0]["pass_at_k"] == pytest.approx(
        agg["exact_match,strict-match"]) == 0.05


def toy_score(text: str) -> float:
    return 100.0 / (100.0 + len(text))


def test_gap_with_verifications_added_by_the_test(tmp_path: Path) -> None:
    store = tmp_path / "st"
    imported(store, SAMPLES)
    recs = Store(store).records(["generation"])
    with Store(store).writer("verify/toy-mc") as w:
        w.add_batch([seal(Verification(generation_id=g.id, verifier="toy", method="mc",
                                       backend="test", template="toy-length",
                                       score=toy_score(g.text)))
                     for g in recs if isinstance(g, Generation)])
    tau = 0.5  # keeps responses of at most 100 characters
    for util in ("strict", "flexible"):
        accs, diffs = [], []
        for doc, g in hand(lines()).items():
            texts = by_doc(lines())[doc]["strict-match"]["resps"][0]
            acc = sum(g[util]) / 4
            kept = [u for u, t in zip(g[util], texts, strict=True) if toy_score(t) >= tau]
            accs.append(acc)
            diffs.append(sum(kept) / len(kept) - acc if kept else 0.0)
        code, out = run(store, "gap", f"mc:tau={tau}", "-u", util, "--resamples", "20",
                        "--json")
        assert code == 0, out
        (r,) = json.loads(out)["results"]
        assert (r["verifier"], r["generator"], r["prompts"], r["generations"]) == (
            "toy", GEN, 5, 20)
        assert r["base"] == pytest.approx(sum(accs) / 5)
        assert r["gap"] == pytest.approx(sum(diffs) / 5)
    # the other way in, import table keyed by the same ids and generator, is refused
    table = tmp_path / "scores.jsonl"
    table.write_text(json.dumps({"prompt_id": "0", "sample": "x", "rm": 0.5}) + "\n")
    before = n_records(store)
    code, out = run(store, "import", "table", str(table), "--score", "rm", "--task",
                    "gsm8k_local", "--generator", GEN)
    assert code == 1 and "--generator" in out and n_records(store) == before


def test_reimport_adds_nothing_folder_or_file(tmp_path: Path) -> None:
    store = tmp_path / "st"
    first = imported(store, DATA / "output")  # the folder: every samples file under it
    assert [d["written"] for d in first["imports"]] == [45] and n_records(store) == 45
    assert first["imports"][0]["sha256"].endswith(
        __import__("hashlib").sha256(SAMPLES.read_bytes()).hexdigest())
    again = imported(store, SAMPLES)
    assert (again["written"], again["already"]) == (0, 45) and n_records(store) == 45
    digests = {r.model_digest for r in Store(store).records(["generation"])
               if isinstance(r, Generation)}
    assert digests == {first["imports"][0]["sha256"]}


def test_gsm8k_grader_grades_the_imported_generations(tmp_path: Path) -> None:
    store = tmp_path / "st"
    assert imported(store, SAMPLES, "--task", "gsm8k")["folder"] == f"import/gsm8k/{GEN}"
    code, out = run(store, "grade", "-q", "--json")
    assert code == 0, out
    (t,) = json.loads(out)["tasks"]
    assert (t["task"], t["graded"]) == ("gsm8k", 20)
    own = stored(store, "gsm8k")
    docs = by_doc(lines())
    # doc 0 repeat 0 says "The answer is 100." for 71: wrong; doc 4 repeat 3 says 5 for 5
    assert "The answer is 100." in own["0", 0][0] and docs[0]["strict-match"]["target"] == "71"
    assert own["0", 0][1:3] == (0.0, 0.0)
    assert "The answer is 5." in own["4", 3][0] and own["4", 3][1:3] == (1.0, 1.0)
    code, out = run(store, "gap", "mc:tau=0.5", "--resamples", "10")
    assert code == 1 and "several graders" in out


def corrupt(tmp_path: Path, edit: Any, results: bool = True) -> Path:
    """A copy of the run folder whose samples lines went through ``edit``."""
    d = tmp_path / "run"
    d.mkdir(parents=True)
    if results:
        shutil.copy(RESULTS, d / RESULTS.name)
    raw = SAMPLES.read_text().splitlines()
    (d / SAMPLES.name).write_text("\n".join(edit(raw)) + "\n")
    return d / SAMPLES.name


def test_malformed_line_names_file_and_line_and_skip_bad(tmp_path: Path) -> None:
    path = corrupt(tmp_path, lambda raw: [*raw[:2], raw[2][:50], *raw[3:]])
    store = tmp_path / "st"
    code, out = run(store, "import", "lm-eval", str(path))
    assert code == 1 and f"{path.name} line 3: not JSON" in out.replace("\n", "")
    assert "Traceback" not in out and n_records(store) == 0
    got = imported(store, path, "--skip-bad")
    # line 3 is doc 2's strict-match line; its flexible-extract line 8 goes with it
    assert (got["rows"], got["skipped"], got["prompts"], got["samples"]) == (10, 2, 4, 16)
    assert [w.rsplit(" ", 1)[1] for w in got["skipped_at"]] == ["3", "8"]


def _edit_line(n: int, change: Any) -> Any:
    def edit(raw: list[str]) -> list[str]:
        row = json.loads(raw[n - 1])
        change(row)
        return [*raw[:n - 1], json.dumps(row), *raw[n:]]
    return edit


BAD = [
    (lambda r: r.pop("resps"), "line 2: no 'resps'"),
    (lambda r: r.update(doc_id=-1), "line 2: doc_id: expected a whole number >= 0"),
    (lambda r: r.update(exact_match=0.5), "lm-eval logged 0.5; refusing to guess"),
    (lambda r: r.update(filtered_resps=[["1", "2"]]), "2 filtered answers for 4 responses"),
    (lambda r: r.update(resps=[["a", "b", "c", "d"]]), "prompt, target or responses differ"),
    (lambda r: r.update(exact_match="yes"), "expected a number in [0, 1], got 'yes'"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_lines_are_refused_whole(tmp_path: Path, change: Any, message: str) -> None:
    path = corrupt(tmp_path, _edit_line(2, change))
    code, out = run(tmp_path / "st", "import", "lm-eval", str(path))
    assert code == 1 and message in out.replace("\n", "") and "Traceback" not in out, out
    assert n_records(tmp_path / "st") == 0


def test_per_doc_grades_are_not_spread_over_repeats(tmp_path: Path) -> None:
    # take_first: filtered_resps holds one string for 4 repeats, its metric grades one answer
    path = corrupt(tmp_path, _edit_line(1, lambda r: r.update(filtered_resps=["100"])))
    code, out = run(tmp_path / "st", "import", "lm-eval", str(path), "--skip-bad")
    assert code == 1 and "keeps one answer per doc" in out.replace("\n", "")
    got = imported(tmp_path / "st", path, "--no-grades")
    assert got["added"] == {"prompt": 5, "generation": 20} and got["strict"] is None
    # without the results JSON: docs all wrong are known per repeat, a 0.25 mean is not
    bare = corrupt(tmp_path / "b", lambda raw: raw, results=False)
    code, out = run(tmp_path / "st2", "import", "lm-eval", str(bare))
    assert code == 1 and "give --generator" in out
    code, out = run(tmp_path / "st2", "import", "lm-eval", str(bare), "--generator", "m")
    assert code == 1 and "exact_match 0.25 is a mean over 4 repeats" in out.replace("\n", "")
    got = imported(tmp_path / "st2", bare, "--generator", "m", "--skip-bad")
    assert (got["prompts"], got["samples"], got["skipped"]) == (3, 12, 4)  # docs 3, 4 left out


def test_one_repeat_takes_the_metric_as_the_grade(tmp_path: Path) -> None:
    # lm-eval's usual layout with repeats: 1 and take_first (evaluator.py): resps [[r]],
    # filtered_resps [answer], the doc's metric that sample's grade (no recomputation: the
    # logged values are set to 1 - hand grade here, and the import follows them)
    def one(raw: list[str]) -> list[str]:
        out = []
        for x in raw:
            r = json.loads(x)
            a = r["filtered_resps"][0][0]
            r.update(resps=[r["resps"][0][:1]], filtered_resps=[a],
                     exact_match=1.0 - hand_grade(a, r["target"]))
            out.append(json.dumps(r))
        return out

    path = corrupt(tmp_path, one)
    got = imported(tmp_path / "st", path)
    assert (got["prompts"], got["samples"], got["repeats"]) == (5, 5, [1])
    have = stored(tmp_path / "st")
    expect = hand(lines())
    for doc in range(5):
        assert have[str(doc), 0][1:3] == (1.0 - expect[doc]["strict"][0],
                                          1.0 - expect[doc]["flexible"][0])


def test_real_take_first_and_multiple_choice_files(tmp_path: Path) -> None:
    store = tmp_path / "st"
    # the folder: its take_first file is fine with --no-grades, but the multiple-choice file
    # after it is refused, and every file is checked before any is written: nothing is
    code, out = run(store, "import", "lm-eval", str(MORE), "--no-grades")
    assert code == 1 and "samples_yesno_local_" in out and "loglikelihood" in out
    assert n_records(store) == 0
    (first,) = MORE.glob("samples_gsm8k_local_first_*.jsonl")
    rows = lines(first)
    assert all(isinstance(r["filtered_resps"][0], str) and len(r["resps"][0]) == 2
               for r in rows)  # take_first: one answer per doc for 2 repeats
    code, out = run(store, "import", "lm-eval", str(first))
    assert code == 1 and "line 1: filter 'strict-match' keeps one answer per doc" in (
        out.replace("\n", "")) and n_records(store) == 0
    got = imported(store, first, "--no-grades", "--task", "gsm8k")
    assert got["added"] == {"prompt": 2, "generation": 4}
    code, out = run(store, "grade", "-q", "--json")
    assert code == 0 and json.loads(out)["tasks"][0]["graded"] == 4, out
    # the multiple-choice lines themselves are told apart without the results JSON too
    (mc,) = MORE.glob("samples_yesno_local_*.jsonl")
    bare = tmp_path / mc.name
    shutil.copy(mc, bare)
    code, out = run(store, "import", "lm-eval", str(bare), "--generator", "m")
    assert code == 1 and f"{bare.name} line 1: a loglikelihood" in out.replace("\n", "")


def test_loglikelihood_and_unknown_filters_are_errors(tmp_path: Path) -> None:
    mc = {"doc_id": 0, "doc": {}, "target": "1", "filter": "none", "metrics": ["acc"],
          "arguments": {"gen_args_0": {"arg_0": "Q?", "arg_1": " yes"},
                        "gen_args_1": {"arg_0": "Q?", "arg_1": " no"}},
          "resps": [[["-1.5", "False"]], [["-0.5", "True"]]],
          "filtered_resps": [["-1.5", "False"], ["-0.5", "True"]], "acc": 1.0}
    path = tmp_path / "samples_arc_2026-01-01T00-00-00.000001.jsonl"
    path.write_text(json.dumps(mc) + "\n")
    code, out = run(tmp_path / "st", "import", "lm-eval", str(path), "--generator", "m",
                    "--skip-bad")
    assert code == 1 and "loglikelihood (multiple-choice) task" in out.replace("\n", "")
    code, out = run(tmp_path / "st", "import", "lm-eval", str(SAMPLES), "--strict", "maj@4")
    assert code == 1 and "no filter 'maj@4'; its filters: strict-match, flexible-extract" in (
        out.replace("\n", ""))
    code, out = run(tmp_path / "st", "import", "lm-eval", str(SAMPLES), "--strict",
                    "strict-match:f1")
    assert code == 1 and "no metric 'f1' for filter 'strict-match'" in out.replace("\n", "")
    code, out = run(tmp_path / "st", "import", "lm-eval", str(tmp_path / "none"))
    assert code == 1 and "no such file or folder" in out
    assert n_records(tmp_path / "st") == 0


def test_choosing_filters_and_hostile_text(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>\x1b[2J[bold red]x[/bold red]"

    def change(r: dict[str, Any]) -> None:
        r["resps"][0][0] = hostile

    path = corrupt(tmp_path, lambda raw: [_edit_line(n, change)(raw)[n - 1]
                                          if n in (1, 6) else x
                                          for n, x in enumerate(raw, 1)])
    store = tmp_path / "st"
    code, out = run(store, "import", "lm-eval", str(path), "--strict", "flexible-extract")
    assert code == 0 and "\x1b" not in out, out
    have = stored(store)
    assert have["0", 0][0] == hostile  # kept verbatim, as text
    expect = hand(lines())
    assert [have["3", i][1] for i in range(4)] == expect[3]["flexible"]  # strict := flexible
    code, out = run(store, "import", "lm-eval", str(path), "--strict", hostile)
    assert code == 1 and "[bold red]x[/bold red]" in out and "\x1b" not in out


@pytest.mark.slow
def test_real_harness_end_to_end(tmp_path: Path, prepared_models: Path) -> None:
    """Runs lm_eval itself (2 docs x 4 repeats, 48 new tokens) and imports what it wrote."""
    for name in ("gsm8k_local.yaml", "gsm8k_items.jsonl", "gsm8k_shots.jsonl"):
        shutil.copy(DATA / name, tmp_path / name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    model = prepared_models / GEN
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args",
           f"pretrained={model},dtype=float32", "--device", "cpu", "--include_path", ".",
           "--tasks", "gsm8k_local", "--log_samples", "--limit", "2", "--batch_size", "8",
           "--gen_kwargs", "max_gen_toks=48", "--output_path", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    store = tmp_path / "st"
    got = imported(store, tmp_path / "out")
    (one,) = got["imports"]
    assert (one["prompts"], one["samples"], one["generator"]) == (2, 8, GEN)
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    agg = results["results"]["gsm8k_local"]
    for util, name in (("strict", "strict-match"), ("flexible", "flexible-extract")):
        code, out = run(store, "passk", "--k", "1", "-u", util, "--json")
        assert code == 0, out
        assert json.loads(out)["rows"][0]["pass_at_k"] == pytest.approx(
            agg[f"exact_match,{name}"])
    assert imported(store, tmp_path / "out")["imports"][0]["written"] == 0
