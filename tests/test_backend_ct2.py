"""The ``ctranslate2`` back ends on the real embedded model (SmolLM2-135M-Instruct), against
the ``transformers`` back end (the reference) on the same prepared model folder."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import msgspec
import pytest

from gvstore.backends import LoglikRequest, SampleRequest, get_backend
from gvstore.backends.base import model_digest
from gvstore.errors import GvstoreError
from gvstore.models import SMOLLM2, resolve
from gvstore.records import Generation, Prompt, Sampling, seal
from gvstore.steps import generate
from gvstore.store import Store
from gvstore.tasks.registry import get_task
from gvstore.verifiers.mc import normalised

pytest.importorskip("ctranslate2")
pytest.importorskip("transformers")

from gvstore.backends.ct2 import CTranslate2Backend, ct2_seed  # noqa: E402
from gvstore.backends.ct2_convert import CT2_MANIFEST, convert, files_digest  # noqa: E402
from gvstore.backends.hf import TransformersBackend  # noqa: E402

SAMPLING = Sampling(temperature=0.7, top_p=0.9, max_tokens=16)
GREEDY = Sampling(temperature=0.0, max_tokens=24)
PROMPTS = ["What is 2+3? End with: The answer is N.", "Name a colour.",
           "Solve 12*7 step by step.", "Écris « bonjour » en chinois : 你好?"]
INT8_LOGLIK_TOL = 1.5
INT8_SCORE_TOL = 0.1
"""int8 against transformers fp32 on mc-style requests: |difference| of a summed
log-likelihood (nats; measured up to 1.07, mean 0.38 on 52 arith requests) and of the mc score
P(Correct)/(P(Correct)+P(Incorrect)) (measured up to 0.056); docs/backends.md states them."""


@pytest.fixture(scope="session")
def hf(prepared_models: Path) -> TransformersBackend:
    b = get_backend("transformers", SMOLLM2, models_dir=prepared_models, batch_size=4)
    assert isinstance(b, TransformersBackend)
    return b


@pytest.fixture(scope="session")
def int8(prepared_models: Path) -> CTranslate2Backend:
    b = get_backend("ctranslate2", SMOLLM2, models_dir=prepared_models, batch_size=4)
    assert isinstance(b, CTranslate2Backend)
    return b


@pytest.fixture(scope="session")
def f32(prepared_models: Path) -> CTranslate2Backend:
    b = get_backend("ctranslate2-float32", SMOLLM2, models_dir=prepared_models, batch_size=4)
    assert isinstance(b, CTranslate2Backend)
    return b


def _reqs(sp: Sampling, seeds: range) -> list[SampleRequest]:
    return [SampleRequest(PROMPTS[s % len(PROMPTS)], sp, seed=s) for s in seeds]


def test_converted_once_atomically_and_digests_keep_records_apart(
    int8: CTranslate2Backend, f32: CTranslate2Backend, prepared_models: Path
) -> None:
    folder = prepared_models / f"{SMOLLM2.name}.ct2-int8"
    assert int8.converted.path == folder and (folder / "model.bin").is_file()
    manifest = json.loads((folder / CT2_MANIFEST).read_text())
    source = resolve(SMOLLM2, prepared_models).digest
    assert manifest["source_digest"] == source and manifest["compute_type"] == "int8"
    assert manifest["files_digest"] == files_digest(folder)
    again = convert(SMOLLM2, "int8", prepared_models)
    assert not again.converted_now and again.record_digest == int8.digest
    # No temporary folder is left beside it.
    assert not [p for p in prepared_models.iterdir() if p.name.startswith(".")]
    digests = {model_digest("transformers", SMOLLM2, prepared_models),
               model_digest("ctranslate2", SMOLLM2, prepared_models),
               model_digest("ctranslate2-float32", SMOLLM2, prepared_models)}
    assert len(digests) == 3 and source in digests
    assert model_digest("ctranslate2-float32", SMOLLM2, prepared_models) == f32.digest
    assert (int8.name, f32.name) == ("ctranslate2", "ctranslate2-float32")
    # Another source digest (a retrained model) is converted again, not reused.
    (folder / CT2_MANIFEST).write_text(json.dumps({**manifest, "source_digest": "sha256:x"}))
    redone = convert(SMOLLM2, "int8", prepared_models)
    assert redone.converted_now and redone.record_digest == int8.digest  # deterministic
    with pytest.raises(GvstoreError, match="compute type must be one of int8, float32"):
        convert(SMOLLM2, "int4", prepared_models)


def test_prompt_tokens_are_the_transformers_back_ends(
    int8: CTranslate2Backend, hf: TransformersBackend
) -> None:
    vocab = json.loads((int8.converted.path / "vocabulary.json").read_text())
    base = msgspec.structs.replace(SMOLLM2, kind="base")
    for kind in ("instruct", "base"):
        int8.model = hf.model = SMOLLM2 if kind == "instruct" else base
        try:
            for p in PROMPTS:
                ids = hf._encode(hf.render(p))
                assert int8.prompt_ids(p) == ids
                # the tokens handed to ctranslate2 are the converted vocabulary's same ids
                assert [vocab.index(t) for t in int8._tokens(ids)] == ids
        finally:
            int8.model = hf.model = SMOLLM2
    assert int8.render("Hi").startswith("<|im_start|>")  # the chat template, kind instruct


def test_float32_greedy_matches_transformers_token_for_token(
    f32: CTranslate2Backend, hf: TransformersBackend
) -> None:
    reqs = _reqs(GREEDY, range(4))
    assert f32.sample(reqs) == hf.sample(reqs)


def test_a_batch_gives_the_same_texts_whatever_ran_before(int8: CTranslate2Backend) -> None:
    first = int8.sample(_reqs(SAMPLING, range(4)))
    other = int8.sample(_reqs(SAMPLING, range(10, 14)))
    again = int8.sample(_reqs(SAMPLING, range(4)))
    assert first == again
    assert other != first and len({s.text for s in first + other}) > 2  # seeds matter
    assert ct2_seed([0, 1, 2, 3]) != ct2_seed([3, 2, 1, 0])
    assert 0 <= ct2_seed(range(100)) < 0xFFFFFFFF


def test_finish_reasons_and_token_counts(int8: CTranslate2Backend) -> None:
    short = int8.sample([SampleRequest("Tell me a long story about a dragon.",
                                       Sampling(temperature=0.0, max_tokens=5), seed=0)])[0]
    assert (short.n_tokens, short.finish_reason) == (5, "length")
    assert len(int8.tokenizer(short.text, add_special_tokens=False)["input_ids"]) == 5
    done = int8.sample([SampleRequest("Say hello.", Sampling(temperature=0.0, max_tokens=200),
                                      seed=0)])[0]
    assert done.finish_reason == "stop" and 0 < done.n_tokens < 200  # end of sequence
    assert "<|im_end|>" not in done.text
    full = int8.sample([SampleRequest(PROMPTS[2], GREEDY, seed=0)])[0]
    stop = full.text.split()[2]  # a word the greedy answer holds
    cut = int8.sample([SampleRequest(PROMPTS[2], msgspec.structs.replace(GREEDY, stop=(stop,)),
                                     seed=0)])[0]
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert full.text.startswith(cut.text) and cut.n_tokens < full.n_tokens


def _ll_requests() -> list[LoglikRequest]:
    task = get_task("arith")
    out = []
    for it in task.items()[:6]:
        text = task.prompt_record(it).text + "\n\nProposed answer: 7. Correct or Incorrect?"
        out += [LoglikRequest(text, "Correct"), LoglikRequest(text, "Incorrect")]
    return out


def test_loglik_agrees_with_transformers(
    f32: CTranslate2Backend, int8: CTranslate2Backend, hf: TransformersBackend
) -> None:
    reqs = _ll_requests()
    ref = hf.loglik(reqs)
    got32, got8 = f32.loglik(reqs), int8.loglik(reqs)
    assert [n for _, n in got32] == [n for _, n in ref] == [n for _, n in got8]
    assert [n for _, n in ref[:2]] == [1, 2]  # "Correct" one token, "Incorrect" two
    assert max(abs(a - b) for (a, _), (b, _) in zip(got32, ref, strict=True)) < 1e-4
    assert max(abs(a - b) for (a, _), (b, _) in zip(got8, ref, strict=True)) < INT8_LOGLIK_TOL
    scores = [[normalised(ll[i][0], ll[i + 1][0]) for i in range(0, len(ll), 2)]
              for ll in (ref, got8)]
    assert max(abs(a - b) for a, b in zip(*scores, strict=True)) < INT8_SCORE_TOL
    assert all(ll < 0 and math.isfinite(ll) for ll, _ in got8)
    # a wrong continuation scores differently: the check can fail
    assert f32.loglik([LoglikRequest(reqs[0].prompt, "Banana")])[0][0] < ref[0][0] - 1


def test_generate_step_resumes_to_the_same_texts(
    int8: CTranslate2Backend, prepared_models: Path, tmp_path: Path
) -> None:
    task = get_task("arith")
    prompts: list[Prompt] = [task.prompt_record(it) for it in task.items()[:4]]
    spec = generate.GenerateSpec(
        model=SMOLLM2.name, model_digest=int8.digest, backend=int8.name, sampling=SAMPLING,
        n=2, seed=1, batch_size=4)
    full = Store(tmp_path / "full")
    generate.run(full, "gen", prompts, spec, lambda: int8)
    want = {g.key: g for g in full.records(["generation"]) if isinstance(g, Generation)}
    assert len(want) == 8 and {g.backend for g in want.values()} == {"ctranslate2"}
    assert {g.model_digest for g in want.values()} == {int8.digest}
    partial = Store(tmp_path / "partial")
    batches = generate.plan([seal(p) for p in prompts], spec)
    keep = [r.key for r in batches[0]] + [r.key for r in batches[1][:2]]
    with partial.writer("gen") as w:
        w.extend(full.records(["prompt"]))
        w.extend(want[k] for k in keep)
    s = generate.run(partial, "gen", prompts, spec, lambda: int8)
    assert (s.made, s.extra) == (2, 2)
    assert {g.key: g.id for g in partial.records(["generation"])} == \
        {k: g.id for k, g in want.items()}


def test_missing_package_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for mod in ("ctranslate2", "gvstore.backends.ct2", "gvstore.backends.ct2_convert"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import fails
    with pytest.raises(GvstoreError) as exc:
        get_backend("ctranslate2", SMOLLM2, models_dir=tmp_path)
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith("back end 'ctranslate2' is not installed")
    assert str(exc.value).endswith("(install the `cpu` extra)")
    with pytest.raises(GvstoreError, match="install the `cpu` extra"):
        model_digest("ctranslate2-float32", SMOLLM2, tmp_path)


def test_split_shared_runs_a_common_start_once_and_leaves_each_row_a_token() -> None:
    from gvstore.backends.ct2_rows import MIN_SHARED, split_shared

    head = [f"t{i}" for i in range(MIN_SHARED + 2)]
    shared, rest = split_shared([head + ["a", "b"], head + ["c"], head + ["a"]])
    assert shared == head and rest == [["a", "b"], ["c"], ["a"]]
    # one row is the other's start: the shorter keeps its last token
    shared, rest = split_shared([head, head + ["x"]])
    assert shared == head[:-1] and rest == [head[-1:], head[-1:] + ["x"]]
    # too little in common, or one row: nothing shared, rows unchanged
    short = head[:MIN_SHARED - 1]
    assert split_shared([short + ["a"], short + ["b"]]) == ([], [short + ["a"], short + ["b"]])
    assert split_shared([head]) == ([], [head])
    assert split_shared([]) == ([], [])


def test_scoring_rows_reads_a_prefix_from_the_row_that_extends_it() -> None:
    from gvstore.backends.ct2_rows import scoring_rows

    needs = [(1, 2, 3), (1, 2, 3, 4), (5, 6), (1, 2), (1, 9), (5, 6)]
    rows, where = scoring_rows(needs)
    assert sorted(rows) == [(1, 2, 3, 4), (1, 9), (5, 6)]
    for need, r in zip(needs, where, strict=True):
        assert rows[r][:len(need)] == need
    assert scoring_rows([]) == ([], [])


def test_loglik_shares_rows_and_matches_one_request_at_a_time(
    f32: CTranslate2Backend,
) -> None:
    """The mc pair (Correct / Incorrect) scored together equals each scored alone, and a row
    serves both: the shared-row arithmetic reads the right positions."""
    reqs = [LoglikRequest(p, c) for p in PROMPTS[:3] for c in ("Correct", "Incorrect", " 5")]
    together = f32.loglik(reqs)
    alone = [f32.loglik([r])[0] for r in reqs]
    for (a, n), (b, m) in zip(together, alone, strict=True):
        assert n == m and abs(a - b) < 1e-4
    assert [n for _, n in together[:3]] == [1, 2, 2]
    assert f32.loglik([LoglikRequest("Hi", "")]) == [(0.0, 0)]


def test_parts_side_by_side_give_the_texts_of_one_worker(
    int8: CTranslate2Backend, prepared_models: Path
) -> None:
    """Sampled parts run on two workers at once give the texts one worker gives, part for
    part (each part is seeded from its own requests, whatever runs beside it)."""
    from gvstore.backends.ct2 import ROWS, workers_for

    assert workers_for(1) == (1, 1) and workers_for(2) == (2, 1) and workers_for(16) == (4, 4)
    one = CTranslate2Backend(SMOLLM2, models_dir=prepared_models, batch_size=64, threads=1)
    two = CTranslate2Backend(SMOLLM2, models_dir=prepared_models, batch_size=64, threads=2)
    try:
        assert (one.workers, two.workers) == (1, 2)
        reqs = _reqs(SAMPLING, range(ROWS + 4))  # two parts
        alone, beside = one.sample(reqs), two.sample(reqs)
        assert alone == beside and two.loads >= 3  # one generator per sampled part
        # the second part alone gives its texts again
        assert two.sample(reqs[ROWS:]) == beside[ROWS:]
        ll = [LoglikRequest(p, c) for p in PROMPTS for c in ("Correct", "Incorrect")]
        assert one.loglik(ll) == two.loglik(ll)
    finally:
        one.close()
        two.close()
