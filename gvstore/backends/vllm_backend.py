"""The ``vllm`` back end (GPU, the ``gpu`` extra): offline batched sampling and log-likelihoods.

vLLM is imported inside ``VllmBackend`` only, so this module (and the pure helpers it shares
with the HTTP back end) imports without it.

* **Prompts** are rendered by us, not by vLLM: an instruct model's prompt goes through the
  tokenizer's chat template (assistant turn opened), a base model's stays raw, exactly as the
  ``transformers`` back end does; the text is tokenised here and handed to vLLM as token ids
  (a ``TokensPrompt``), so vLLM adds no second BOS and every back end sees the same ids.
* **Seeds**: every request gets its own vLLM request with ``n=1`` and its own seed (per-request
  generators in vLLM), so a sample depends on its record key, not on the batch it ran in.
  With ``max_samples_per_request=k > 1``, identical (prompt, sampling) requests of one call
  are merged, ``k`` at most, into one vLLM request with ``n`` samples and one seed derived
  from theirs (as the ``transformers`` back end does for a batch): fewer prefills, but the
  texts then depend on that grouping. Greedy requests are never merged (vLLM refuses ``n > 1``
  at temperature 0).
* **top_k**: our ``top_k=0`` ("no cut") is sent as ``-1``, which every vLLM release accepts as
  "disabled" (recent ones take 0 too; 0.6 refused 0).
* **Token counts** leave out a trailing end-of-sequence token (as the ``transformers`` back
  end does); ``finish_reason`` is vLLM's ``"stop"`` (EOS or a stop string) or ``"length"``.
* **Log-likelihoods** score prompt + continuation in one pass with ``prompt_logprobs``: the
  prompt and the continuation are tokenised apart and concatenated, so the boundary is exact
  and every continuation token is scored (``" Incorrect"`` is two tokens on SmolLM2).
  vLLM skips reading the prefix cache for requests that ask for prompt log-probabilities, so
  prefix caching does not truncate them.

A ``package`` (GGUF) model is converted once to a safetensors folder (what ``prepare-model``
does; same digest) since vLLM loads folders; ``local`` models load from their folder, ``hub``
models by id and revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gvstore.backends.base import LoglikRequest, Sample, SampleRequest
from gvstore.backends.hf import batch_seed
from gvstore.errors import GvstoreError
from gvstore.models import DEFAULT_MODELS_DIR, ModelSpec, Resolved, prepare, resolve
from gvstore.records import Sampling

# ---- helpers shared with the HTTP back end (pure: no vllm, no torch) ----------------------


@dataclass(frozen=True)
class Group:
    """One engine request: ``len(indices)`` samples of one prompt with one seed."""

    prompt: str
    sampling: Sampling
    seed: int
    indices: tuple[int, ...]
    """Positions of the ``SampleRequest``s it answers, in order."""

    @property
    def n(self) -> int:
        return len(self.indices)


def group_requests(requests: Sequence[SampleRequest], max_per_request: int = 1) -> list[Group]:
    """Cut requests into engine requests. With ``max_per_request=1`` (the default of both back
    ends) each request is its own, with its own seed. Otherwise identical (prompt, sampling)
    requests are merged in order of appearance, ``max_per_request`` at most, with a seed
    derived from their seeds; greedy requests are never merged."""
    cap = max(1, max_per_request)
    groups: list[Group] = []
    open_: dict[tuple[str, Sampling], list[int]] = {}
    order: list[list[int]] = []
    for i, r in enumerate(requests):
        if cap == 1 or r.sampling.temperature == 0:
            order.append([i])
            continue
        k = (r.prompt, r.sampling)
        cur = open_.get(k)
        if cur is None or len(cur) >= cap:
            cur = []
            open_[k] = cur
            order.append(cur)
        cur.append(i)
    for idx in order:
        first = requests[idx[0]]
        seed = first.seed if len(idx) == 1 else batch_seed([requests[i].seed for i in idx])
        groups.append(Group(first.prompt, first.sampling, seed, tuple(idx)))
    return groups


def render_prompt(tokenizer: Any, kind: str, prompt: str) -> str:
    """The text the model sees: the chat template for instruct models, else the raw prompt."""
    if kind == "instruct" and getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True,
        )
        return text
    return prompt


def encode_prompt(tokenizer: Any, kind: str, text: str) -> list[int]:
    """Token ids of a rendered prompt. A chat template already holds the special tokens it
    needs; a base model's prompt gets the tokenizer's own (a BOS where the model has one)."""
    return list(tokenizer.encode(text, add_special_tokens=kind != "instruct"))


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a continuation, tokenised apart from its prompt."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def eos_ids(tokenizer: Any) -> set[int]:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, list | tuple | set) else {int(eos)}


def vllm_top_k(top_k: int) -> int:
    """Our ``top_k=0`` means no cut; vLLM's spelling of that is ``-1`` (all versions)."""
    return top_k if top_k > 0 else -1


# ---- vLLM arguments and outputs (pure: tested with fakes, see tests/test_backend_vllm.py) --


def sampling_kwargs(sp: Sampling, *, n: int, seed: int | None,
                    logprobs: int | None = None) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one engine request."""
    if sp.temperature == 0 and n > 1:
        raise GvstoreError("greedy sampling (temperature 0) gives one sample per request; "
                           "vLLM refuses n > 1 there")
    kw: dict[str, Any] = {
        "n": n, "temperature": sp.temperature, "top_p": sp.top_p,
        "top_k": vllm_top_k(sp.top_k), "max_tokens": sp.max_tokens, "seed": seed,
    }
    if sp.stop:
        kw["stop"] = list(sp.stop)
    if logprobs is not None:
        kw["logprobs"] = logprobs
    return kw


def loglik_kwargs() -> dict[str, Any]:
    """``SamplingParams`` of a scoring request: one greedy token (vLLM needs
    ``max_tokens >= 1``) and the log-probability of every prompt token."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 1}


def parse_completion(out: Any, eos: set[int]) -> Sample:
    """A ``Sample`` from a vLLM ``CompletionOutput`` (``text``, ``token_ids``,
    ``finish_reason``). A trailing EOS token is not counted."""
    ids = list(out.token_ids)
    while ids and ids[-1] in eos:
        ids.pop()
    reason = out.finish_reason
    if reason not in ("stop", "length"):
        raise GvstoreError(f"vLLM ended a request with finish_reason={reason!r} "
                           "(aborted or out of memory?); run it again")
    return Sample(text=out.text, n_tokens=len(ids), finish_reason=reason)


def samples_from_outputs(groups: Sequence[Group], outputs: Sequence[Any], n_requests: int,
                         eos: set[int]) -> list[Sample]:
    """Samples in request order from one ``RequestOutput`` per group."""
    if len(outputs) != len(groups):
        raise GvstoreError(f"vLLM returned {len(outputs)} outputs for {len(groups)} requests")
    result: list[Sample | None] = [None] * n_requests
    for g, ro in zip(groups, outputs, strict=True):
        if len(ro.outputs) != g.n:
            raise GvstoreError(f"vLLM returned {len(ro.outputs)} samples for n={g.n}")
        ordered = sorted(ro.outputs, key=lambda co: getattr(co, "index", 0))
        for i, co in zip(g.indices, ordered, strict=True):
            result[i] = parse_completion(co, eos)
    missing = [i for i, s in enumerate(result) if s is None]
    if missing:
        raise GvstoreError(f"no sample for requests {missing}")
    return [s for s in result if s is not None]


def _logprob_value(entry: Any) -> float:
    # vLLM's Logprob has .logprob; a plain float is accepted too.
    return float(getattr(entry, "logprob", entry))


def continuation_logprob(prompt_logprobs: Sequence[Any], token_ids: Sequence[int],
                         start: int) -> float:
    """Sum of the log-probabilities of ``token_ids`` at positions ``start..`` of a request's
    ``prompt_logprobs`` (one ``{token_id: Logprob}`` per prompt token, ``None`` first)."""
    if start < 1:
        raise GvstoreError("a continuation needs at least one prompt token before it")
    total = 0.0
    for j, tok in enumerate(token_ids):
        pos = start + j
        if pos >= len(prompt_logprobs) or prompt_logprobs[pos] is None:
            raise GvstoreError(f"vLLM gave no prompt log-probability at position {pos}")
        entry = prompt_logprobs[pos].get(tok)
        if entry is None:
            raise GvstoreError(f"vLLM's prompt log-probabilities at position {pos} lack the "
                               f"token {tok}")
        total += _logprob_value(entry)
    return total


def engine_args(resolved: Resolved, *, tensor_parallel_size: int, gpu_memory_utilization: float,
                seed: int, **engine_kwargs: Any) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for a resolved model (a folder, or a hub id)."""
    spec = resolved.spec
    if resolved.gguf_file:
        raise GvstoreError(f"model {spec.name!r}: vLLM loads model folders, not GGUF files; "
                           "run `gvstore prepare-model` first")
    kw: dict[str, Any] = {
        "model": spec.hub_id if spec.source == "hub" else str(resolved.path),
        "enable_prefix_caching": True, "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization, "seed": seed,
    }
    if spec.source == "hub" and spec.revision:
        kw["revision"] = spec.revision
        kw["tokenizer_revision"] = spec.revision
    kw.update(engine_kwargs)
    return kw


# ---- the back end -----------------------------------------------------------------------


class VllmBackend:
    """vLLM's offline engine on this machine's GPUs.

    ``batch_size``: engine requests per ``LLM.generate`` call (vLLM schedules within a call;
    bigger is faster, the generate step's own batch size bounds it too).
    ``max_samples_per_request``: see the module doc (1 keeps samples independent of batching).
    ``tensor_parallel_size``: GPUs one model is split over. ``gpu_memory_utilization``: the
    share of each GPU's memory vLLM may take. Other keyword arguments go to ``vllm.LLM``
    (``dtype``, ``max_model_len``, ``enforce_eager``, ...).
    """

    name = "vllm"

    def __init__(
        self,
        model: ModelSpec,
        *,
        batch_size: int = 256,
        max_samples_per_request: int = 1,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        models_dir: Path = DEFAULT_MODELS_DIR,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise GvstoreError(f"back end 'vllm' needs the `gpu` extra: {exc}") from exc
        self.model = model
        self.batch_size = max(1, batch_size)
        self.max_samples_per_request = max(1, max_samples_per_request)
        resolved = resolve(model, models_dir)
        if resolved.gguf_file:  # vLLM loads folders: convert once, digest unchanged
            prepare(model, models_dir)
            resolved = resolve(model, models_dir)
        self.resolved = resolved
        self.digest = resolved.digest
        self._vllm = vllm
        self.llm: Any = vllm.LLM(**engine_args(
            resolved, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, seed=seed, **engine_kwargs))
        self.tokenizer = self.llm.get_tokenizer()
        self._eos = eos_ids(self.tokenizer)
        self.calls = 0  # requests answered (sample + loglik), for tests and summaries

    def render(self, prompt: str) -> str:
        return render_prompt(self.tokenizer, self.model.kind, prompt)

    def _prompt_ids(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, self.model.kind, self.render(prompt))

    def _generate(self, prompts: list[dict[str, Any]], params: list[Any]) -> list[Any]:
        outs: list[Any] = []
        for i in range(0, len(prompts), self.batch_size):
            outs.extend(self.llm.generate(prompts[i:i + self.batch_size],
                                          params[i:i + self.batch_size], use_tqdm=False))
        return outs

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        if not requests:
            return []
        groups = group_requests(requests, self.max_samples_per_request)
        ids: dict[str, list[int]] = {}
        prompts, params = [], []
        for g in groups:
            if g.prompt not in ids:
                ids[g.prompt] = self._prompt_ids(g.prompt)
            prompts.append({"prompt_token_ids": ids[g.prompt]})  # a vllm TokensPrompt
            params.append(self._vllm.SamplingParams(
                **sampling_kwargs(g.sampling, n=g.n, seed=g.seed)))
        outputs = self._generate(prompts, params)
        self.calls += len(requests)
        return samples_from_outputs(groups, outputs, len(requests), self._eos)

    def loglik(self, requests: Sequence[LoglikRequest]) -> list[tuple[float, int]]:
        """Sum of log p(continuation tokens | rendered prompt), tokenised apart."""
        if not requests:
            return []
        rows = [(self._prompt_ids(r.prompt), encode_continuation(self.tokenizer, r.continuation))
                for r in requests]
        todo = [k for k, (_, c) in enumerate(rows) if c]
        params = self._vllm.SamplingParams(**loglik_kwargs())
        outputs = self._generate([{"prompt_token_ids": rows[k][0] + rows[k][1]} for k in todo],
                                 [params] * len(todo))
        out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
        for k, ro in zip(todo, outputs, strict=True):
            p, c = rows[k]
            out[k] = (continuation_logprob(ro.prompt_logprobs, c, len(p)), len(c))
        self.calls += len(requests)
        return out

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            shutdown = getattr(llm, "shutdown", None)  # recent vLLM frees the engine here
            if callable(shutdown):
                shutdown()
