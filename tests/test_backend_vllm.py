"""The ``vllm`` back end.

The fast tests check OUR side only: how requests are grouped and seeded, the keyword arguments
we build for ``vllm.SamplingParams`` and ``vllm.LLM``, and how we read vLLM's outputs. vLLM
itself is not imported: its ``RequestOutput`` / ``CompletionOutput`` / ``Logprob`` are stood in
for by small fake objects of the same shape, and a fake ``vllm`` module (``LLM``,
``SamplingParams``) records what the back end hands it. They do not test vLLM.

The ``gpu`` test runs the real engine on the embedded SmolLM2 (needs the ``gpu`` extra and a
CUDA GPU) and compares its log-likelihoods with the ``transformers`` back end.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import vllm_gpu

from gvstore.backends import LoglikRequest, SampleRequest
from gvstore.backends.hf import batch_seed
from gvstore.backends.vllm_backend import (
    VllmBackend,
    continuation_logprob,
    engine_args,
    group_requests,
    loglik_kwargs,
    render_prompt,
    samples_from_outputs,
    sampling_kwargs,
)
from gvstore.errors import GvstoreError
from gvstore.models import ModelSpec, Resolved
from gvstore.records import Sampling

HUB = ModelSpec(name="tiny", source="hub", hub_id="org/tiny", revision="abc123",
                kind="instruct")
SP = Sampling(temperature=0.8, top_p=0.95, top_k=0, max_tokens=7, stop=("\n\n",))


# ---- fakes shaped like vLLM's outputs ------------------------------------------------------


@dataclass
class FakeCompletion:  # vllm.outputs.CompletionOutput
    text: str
    token_ids: list[int]
    finish_reason: str | None = "stop"


@dataclass
class FakeRequestOutput:  # vllm.outputs.RequestOutput
    outputs: list[FakeCompletion] = field(default_factory=list)
    prompt_logprobs: list[dict[int, Any] | None] | None = None


@dataclass
class FakeLogprob:  # vllm.sequence.Logprob
    logprob: float
    rank: int | None = None


class FakeTokenizer:
    """One token per character; BOS 1, EOS 0."""

    chat_template = "fake"
    eos_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(ch) for ch in text]

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False,
                            add_generation_prompt: bool = True) -> str:
        return f"<u>{messages[0]['content']}</u><a>"


def fake_logprob(token: int) -> float:
    return -((token % 7) + 1) / 10


# ---- grouping and seeds -------------------------------------------------------------------


def test_each_request_is_its_own_engine_request_by_default() -> None:
    rs = [SampleRequest("p", SP, seed=s) for s in (5, 6, 7)]
    groups = group_requests(rs)
    assert [(g.indices, g.seed, g.n) for g in groups] == [((0,), 5, 1), ((1,), 6, 1),
                                                          ((2,), 7, 1)]


def test_identical_requests_merge_up_to_the_cap() -> None:
    other = Sampling(temperature=0.8, max_tokens=3)
    rs = [SampleRequest("p", SP, 1), SampleRequest("q", SP, 2), SampleRequest("p", SP, 3),
          SampleRequest("p", other, 4), SampleRequest("p", SP, 5), SampleRequest("p", SP, 6)]
    groups = group_requests(rs, max_per_request=3)
    assert [g.indices for g in groups] == [(0, 2, 4), (1,), (3,), (5,)]
    assert groups[0].seed == batch_seed([1, 3, 5]) and groups[1].seed == 2
    greedy = [SampleRequest("p", Sampling(temperature=0.0), s) for s in (1, 2)]
    assert [g.n for g in group_requests(greedy, max_per_request=8)] == [1, 1]


# ---- arguments we build -------------------------------------------------------------------


def test_sampling_kwargs() -> None:
    assert sampling_kwargs(SP, n=2, seed=9) == {
        "n": 2, "temperature": 0.8, "top_p": 0.95, "top_k": -1, "max_tokens": 7, "seed": 9,
        "stop": ["\n\n"]}
    kw = sampling_kwargs(Sampling(top_k=40), n=1, seed=None, logprobs=0)
    assert (kw["top_k"], kw["logprobs"], "stop" in kw) == (40, 0, False)
    with pytest.raises(GvstoreError, match="greedy"):
        sampling_kwargs(Sampling(temperature=0.0), n=2, seed=1)
    assert loglik_kwargs() == {"n": 1, "temperature": 0.0, "max_tokens": 1,
                               "prompt_logprobs": 1}


def test_engine_args() -> None:
    hub = engine_args(Resolved(HUB, Path("org/tiny"), None, "hub:org/tiny@abc123"),
                      tensor_parallel_size=2, gpu_memory_utilization=0.5, seed=0, dtype="half")
    assert hub == {"model": "org/tiny", "enable_prefix_caching": True,
                   "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5, "seed": 0,
                   "revision": "abc123", "tokenizer_revision": "abc123", "dtype": "half"}
    local = ModelSpec(name="m", source="local", path="/models/m")
    assert engine_args(Resolved(local, Path("/models/m"), None, "sha256:x"),
                       tensor_parallel_size=1, gpu_memory_utilization=0.9,
                       seed=0)["model"] == "/models/m"
    with pytest.raises(GvstoreError, match="prepare-model"):
        engine_args(Resolved(local, Path("/x"), "m.gguf", "sha256:x"), tensor_parallel_size=1,
                    gpu_memory_utilization=0.9, seed=0)


def test_render_prompt() -> None:
    tok = FakeTokenizer()
    assert render_prompt(tok, "instruct", "hi") == "<u>hi</u><a>"
    assert render_prompt(tok, "base", "hi") == "hi"


# ---- outputs we read ----------------------------------------------------------------------


def test_samples_in_request_order_without_eos() -> None:
    rs = [SampleRequest("p", SP, 1), SampleRequest("q", SP, 2), SampleRequest("p", SP, 3)]
    groups = group_requests(rs, max_per_request=2)  # (0, 2) and (1,)
    outs = [FakeRequestOutput([FakeCompletion("a", [5, 6, 0]), FakeCompletion("b", [7] * 7,
                                                                           "length")]),
            FakeRequestOutput([FakeCompletion("c", [8])])]
    got = samples_from_outputs(groups, outs, 3, eos={0})
    assert [(s.text, s.n_tokens, s.finish_reason) for s in got] == [
        ("a", 2, "stop"), ("c", 1, "stop"), ("b", 7, "length")]
    with pytest.raises(GvstoreError, match="2 samples for n=1"):
        samples_from_outputs(groups[1:], [outs[0]], 1, eos={0})
    with pytest.raises(GvstoreError, match="abort"):
        samples_from_outputs(groups[1:], [FakeRequestOutput([FakeCompletion("", [], "abort")])],
                             1, eos={0})


def test_continuation_logprob_reads_prompt_logprobs() -> None:
    # prompt [10, 11] + continuation [12, 13]; position 0 has no log-probability
    pl: list[dict[int, Any] | None] = [
        None, {11: FakeLogprob(-0.5)},
        {12: FakeLogprob(-1.0), 99: FakeLogprob(-0.1)}, {13: FakeLogprob(-2.0)}]
    assert continuation_logprob(pl, [12, 13], start=2) == -3.0
    with pytest.raises(GvstoreError, match="lack the token 14"):
        continuation_logprob(pl, [12, 14], start=2)
    with pytest.raises(GvstoreError, match="position 4"):
        continuation_logprob(pl, [12, 13, 1], start=2)
    with pytest.raises(GvstoreError, match="at least one prompt token"):
        continuation_logprob(pl, [10], start=0)


# ---- the back end against a fake vllm module ---------------------------------------------


class FakeLLM:
    made: list[FakeLLM] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[tuple[list[dict[str, Any]], list[Any]]] = []
        FakeLLM.made.append(self)

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    def generate(self, prompts: Sequence[dict[str, Any]], params: Sequence[Any],
                 use_tqdm: bool = True) -> list[FakeRequestOutput]:
        assert use_tqdm is False  # the library prints nothing
        self.calls.append((list(prompts), list(params)))
        outs = []
        for p, sp in zip(prompts, params, strict=True):
            ids, kw = p["prompt_token_ids"], sp.kwargs
            if kw.get("prompt_logprobs"):
                pl: list[dict[int, Any] | None] = [None] + [
                    {t: FakeLogprob(fake_logprob(t))} for t in ids[1:]]
                outs.append(FakeRequestOutput([FakeCompletion("x", [1])], pl))
            else:
                outs.append(FakeRequestOutput([
                    FakeCompletion(f"{kw['seed']}/{i}", [2, 3, 0]) for i in range(kw["n"])]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[FakeLLM]:
    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    module = types.ModuleType("vllm")
    module.LLM = FakeLLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.made = []
    return FakeLLM


def test_backend_wiring(fake_vllm: type[FakeLLM]) -> None:
    b = VllmBackend(HUB, batch_size=2, tensor_parallel_size=4, max_model_len=1024)
    llm = fake_vllm.made[0]
    assert llm.kwargs["model"] == "org/tiny" and llm.kwargs["tensor_parallel_size"] == 4
    assert llm.kwargs["enable_prefix_caching"] is True and llm.kwargs["max_model_len"] == 1024
    assert b.digest == "hub:org/tiny@abc123"

    out = b.sample([SampleRequest("hi", SP, seed=s) for s in (1, 2, 3)])
    assert [s.text for s in out] == ["1/0", "2/0", "3/0"]
    assert all(s.n_tokens == 2 for s in out)  # the EOS token is not counted
    assert [len(p) for p, _ in llm.calls] == [2, 1]  # batch_size engine requests per call
    prompt = llm.calls[0][0][0]["prompt_token_ids"]
    assert prompt == [ord(c) for c in "<u>hi</u><a>"]  # rendered here, no extra BOS

    llm.calls.clear()
    [(lc, nc), (le, ne), (li, ni)] = b.loglik([
        LoglikRequest("Q", " Correct"), LoglikRequest("Q", ""), LoglikRequest("Q", " Incorrect")])
    assert (nc, ne, ni) == (8, 0, 10) and le == 0.0
    assert lc == pytest.approx(sum(fake_logprob(ord(c)) for c in " Correct"))
    assert li == pytest.approx(sum(fake_logprob(ord(c)) for c in " Incorrect"))
    sent = [p["prompt_token_ids"] for ps, _ in llm.calls for p in ps]
    assert sent[0] == [ord(c) for c in "<u>Q</u><a> Correct"]  # prompt + continuation ids
    assert b.calls == 6
    b.close()
    assert b.llm is None


def test_backend_merges_samples_when_asked(fake_vllm: type[FakeLLM]) -> None:
    b = VllmBackend(HUB, max_samples_per_request=4)
    out = b.sample([SampleRequest("hi", SP, seed=s) for s in (1, 2, 3)])
    (prompts, params), = fake_vllm.made[0].calls
    assert len(prompts) == 1 and params[0].kwargs["n"] == 3
    assert [s.text for s in out] == [f"{batch_seed([1, 2, 3])}/{i}" for i in range(3)]


# ---- the real engine ----------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not vllm_gpu(), reason="requires vllm (the gpu extra) and a CUDA GPU")
def test_vllm_on_smollm2(prepared_models: Path) -> None:
    from gvstore.backends.hf import TransformersBackend
    from gvstore.models import SMOLLM2

    b = VllmBackend(SMOLLM2, models_dir=prepared_models, gpu_memory_utilization=0.3,
                    dtype="float32", max_model_len=2048, enforce_eager=True)
    try:
        sp = Sampling(temperature=1.0, max_tokens=16)
        batch = [SampleRequest("Name a colour.", sp, seed=s) for s in (1, 2, 3, 1)]
        first, again = b.sample(batch), b.sample(batch[::-1])[::-1]
        assert [s.text for s in first] == [s.text for s in again]  # per-request seeds
        assert first[0].text == first[3].text and len({s.text for s in first[:3]}) > 1
        prompt = "Is 2+2=4? Answer Correct or Incorrect.\nAnswer:"
        asked = [LoglikRequest(prompt, " Correct"), LoglikRequest(prompt, " Incorrect")]
        got = b.loglik(asked)
    finally:
        b.close()
    hf = TransformersBackend(SMOLLM2, models_dir=prepared_models)
    try:
        ref = hf.loglik(asked)
    finally:
        hf.close()
    assert [n for _, n in got] == [n for _, n in ref] == [1, 2]
    for (a, _), (r, _) in zip(got, ref, strict=True):
        assert a == pytest.approx(r, abs=0.02)
