"""The ``openai`` back end: a client for a fleet of OpenAI-compatible servers (``vllm serve``).

Requests go to ``/v1/completions`` of each server in turn (round robin), at most
``concurrency`` in flight at once, from an asyncio loop that this back end runs in a thread of
its own (so it also works where the caller already runs a loop). A request that meets a 429
(or 408, 409, 425), a 5xx, a dropped connection or a timeout is sent again, to the next
server, after an exponential back-off with jitter (a ``Retry-After`` header is honoured);
after ``max_retries`` retries a ``GvstoreError`` says what the last failure was. Other 4xx (and
3xx: redirects are not followed) answers are errors at once: sending them again would not help.

* **Bounds**: each try may take ``timeout`` seconds (default 120: a 512-token completion at
  5 tokens/s, and its prefill), connecting ``connect_timeout`` of them; one request, its
  retries and back-off included, ends after ``deadline`` seconds (default 300). An answer's
  body is read in chunks up to ``max_response_bytes`` (default 16 MiB); a longer one
  (declared or streamed) is an error naming the URL and the cap, and is never read whole.
* **Keys stay off plain HTTP**: an API key with an ``http://`` URL whose host is not loopback
  (127.0.0.0/8, ``::1``, ``localhost``) is refused before anything is sent, unless
  ``allow_http_key`` (or ``$GVSTORE_OPENAI_ALLOW_HTTP_KEY=1``) says the network is trusted.

* **Prompts are rendered here**, with the model's own Hugging Face tokenizer (loaded from the
  model's folder or GGUF file through ``gvstore.models.resolve``): the chat template for
  instruct models, raw text for base models, as the ``transformers`` and ``vllm`` back ends
  do. So ``/v1/completions``, not ``/v1/chat/completions``: the server's chat template and
  defaults (system prompt, BOS handling) cannot change the prompt, the same record means the
  same text on every back end, and log-likelihoods (``echo`` with ``logprobs``) exist only on
  the completions endpoint.
* ``prompt_format="tokens"`` (the default; vLLM) sends the prompt as token ids, tokenised as
  the other back ends do: no second BOS, and an exact prompt/continuation boundary.
  ``"text"`` sends text, for servers that take text only (llama.cpp's Python server): the
  server tokenises it, and a log-likelihood's continuation is found as the run of echoed
  tokens just before the generated one that spells it exactly (an error if the server merged
  the boundary into one token).
* **Seeds**: one request per sample with its own seed, as the ``vllm`` back end does;
  ``max_samples_per_request=k`` merges identical requests into one with ``n <= k`` (a server
  that ignores ``n``, as llama.cpp's does, is an error then). ``top_k`` is always sent, our
  ``0`` ("no cut") as ``top_k_off`` (``-1``, which every vLLM takes; llama.cpp wants ``0``).
* **Token counts**: ``usage.completion_tokens`` where a request has one sample, else the
  sample's text tokenised again here. The model digest is that of the local weights: serve
  the same weights.
* ``extra_body`` is merged into every request, for server-specific fields (for llama.cpp,
  ``{"repeat_penalty": 1.0, "min_p": 0.0}`` turns off its default penalties).

The module is the back end itself; the HTTP transport (servers, retries, limits and
deadlines) is ``gvstore.backends.transport`` and the request bodies and answers are
``gvstore.backends.completions``.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from gvstore.backends.base import LoglikRequest, Sample, SampleRequest
from gvstore.backends.completions import (
    completion_body,
    loglik_body,
    loglik_from_text,
    loglik_from_tokens,
    parse_samples,
)
from gvstore.backends.transport import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT_S,
    Limits,
    Transport,
    endpoints,
)
from gvstore.backends.vllm_backend import (
    Group,
    encode_continuation,
    encode_prompt,
    group_requests,
    render_prompt,
)
from gvstore.errors import GvstoreError
from gvstore.models import DEFAULT_MODELS_DIR, ModelSpec, Resolved, resolve

T = TypeVar("T")


def load_tokenizer(resolved: Resolved) -> Any:
    """The model's Hugging Face tokenizer (from its folder, GGUF file or hub id)."""
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise GvstoreError("the openai back end renders prompts with the model's tokenizer: "
                           f"install transformers (the `cpu` extra): {exc}") from exc
    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {}
    if resolved.gguf_file:
        kwargs["gguf_file"] = resolved.gguf_file
    if resolved.spec.source == "hub" and resolved.spec.revision:
        kwargs["revision"] = resolved.spec.revision
    where = resolved.spec.hub_id if resolved.spec.source == "hub" else str(resolved.path)
    try:
        return AutoTokenizer.from_pretrained(where, **kwargs)
    except OSError as exc:
        raise GvstoreError(f"cannot load the tokenizer of {resolved.spec.name!r} from {where}: "
                           f"{exc}") from exc


class OpenAIBackend:
    """A client for OpenAI-compatible ``/v1/completions`` servers (see the module doc).

    ``base_urls``: one URL or several (a list, or one comma-separated string), such as
    ``http://127.0.0.1:8000``; ``/v1`` is added where missing (default:
    ``$GVSTORE_OPENAI_BASE_URLS``). ``api_key``: sent as a bearer
    token (default: ``$OPENAI_API_KEY`` when set). ``concurrency``: requests in flight at
    once over all servers. ``max_retries``: retries of one request after the first try.
    ``timeout``: seconds one try may take (connecting, waiting and reading the answer);
    ``connect_timeout``: seconds connecting may take (within ``timeout``); ``deadline``: seconds
    one request may take over all its tries and back-offs (waits for a free ``concurrency``
    slot, which are this client's own queue, are not counted). ``max_response_bytes``: the
    largest answer read. ``allow_http_key``: send ``api_key`` over plain HTTP to hosts that
    are not loopback (default: ``$GVSTORE_OPENAI_ALLOW_HTTP_KEY`` is ``1``; else refused).
    ``served_model_name``: the ``model`` field sent
    (default: the one model the first server lists at ``/v1/models``). ``top_k_off``: the
    ``top_k`` that means no cut to the server: ``-1`` (every vLLM release) or ``0``
    (llama.cpp, which refuses ``-1``; recent vLLM takes it too). ``backoff`` and
    ``max_backoff``: first and largest pause between tries, in seconds. ``tokenizer``: a
    tokenizer object to use instead of loading the model's. ``batch_size`` is accepted for
    parity with the other back ends; ``concurrency`` is what bounds the work in flight.
    """

    name = "openai"

    def __init__(
        self,
        model: ModelSpec,
        *,
        base_urls: Sequence[str] | str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = DEFAULT_TIMEOUT_S,
        deadline: float = DEFAULT_DEADLINE_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        allow_http_key: bool | None = None,
        served_model_name: str | None = None,
        prompt_format: Literal["tokens", "text"] = "tokens",
        top_k_off: int = -1,
        max_samples_per_request: int = 1,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        tokenizer: Any = None,
        models_dir: Path = DEFAULT_MODELS_DIR,
        batch_size: int | None = None,
    ) -> None:
        import aiohttp  # noqa: F401  (fail here, not in the loop thread, when it is missing)
        if prompt_format not in ("tokens", "text"):
            raise GvstoreError(f"prompt_format must be 'tokens' or 'text', got {prompt_format!r}")
        self.limits = Limits.checked(
            concurrency=concurrency, max_retries=max_retries, timeout=timeout,
            deadline=deadline, connect_timeout=connect_timeout,
            max_response_bytes=max_response_bytes, backoff=backoff, max_backoff=max_backoff)
        self.model = model
        self.urls, self.api_key = endpoints(base_urls, api_key, allow_http_key)
        self.served_model_name = served_model_name
        self.prompt_format = prompt_format
        self.top_k_off = top_k_off
        self.max_samples_per_request = max(1, max_samples_per_request)
        self.logprobs = logprobs
        self.extra_body = dict(extra_body or {})
        self.batch_size = batch_size
        resolved = resolve(model, models_dir)
        self.digest = resolved.digest
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(resolved)
        self.calls = 0  # requests answered (sample + loglik), for tests and summaries
        self.http = Transport(self.urls, self.api_key, self.limits)

    @property
    def attempts(self) -> int:
        """HTTP requests sent, retries included."""
        return self.http.attempts

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.http.run(coro)

    async def _model_name(self) -> str:
        if self.served_model_name is None:
            data = await self.http.request("GET", "/models")
            ids = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
            if len(ids) != 1 or not isinstance(ids[0], str):
                raise GvstoreError(f"the server serves models {ids}; name one with "
                                   "served_model_name")
            self.served_model_name = ids[0]
        return self.served_model_name

    def served_model(self) -> str:
        """The ``model`` field sent: ``served_model_name``, else asked of the first server."""
        return self._run(self._model_name())

    # ---- rendering -------------------------------------------------------------------------

    def render(self, prompt: str) -> str:
        return render_prompt(self.tokenizer, self.model.kind, prompt)

    def _prompt(self, rendered: str) -> str | list[int]:
        if self.prompt_format == "tokens":
            return encode_prompt(self.tokenizer, self.model.kind, rendered)
        return rendered

    def _count(self, text: str) -> int:
        return len(encode_continuation(self.tokenizer, text))

    # ---- sampling ----------------------------------------------------------------------

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        if not requests:
            return []
        groups = group_requests(requests, self.max_samples_per_request)
        per_group = self._run(self._sample(groups))
        out: list[Sample | None] = [None] * len(requests)
        for g, samples in zip(groups, per_group, strict=True):
            for i, s in zip(g.indices, samples, strict=True):
                out[i] = s
        self.calls += len(requests)
        return [s for s in out if s is not None]

    async def _sample(self, groups: Sequence[Group]) -> list[list[Sample]]:
        model = await self._model_name()
        prompts: dict[str, str | list[int]] = {}
        for g in groups:
            if g.prompt not in prompts:
                prompts[g.prompt] = self._prompt(self.render(g.prompt))

        async def one(g: Group) -> list[Sample]:
            body = completion_body(model, prompts[g.prompt], g.sampling, n=g.n, seed=g.seed,
                                   logprobs=self.logprobs, extra=self.extra_body,
                                   top_k_off=self.top_k_off)
            return parse_samples(await self.http.request("POST", "/completions", body), g.n,
                                 self._count)

        return await self.http.gather([one(g) for g in groups])

    # ---- log-likelihoods ---------------------------------------------------------------

    def loglik(self, requests: Sequence[LoglikRequest]) -> list[tuple[float, int]]:
        """Sum of log p(continuation tokens | rendered prompt): exact token boundary with
        ``prompt_format="tokens"``, the server's tokenisation with ``"text"``."""
        if not requests:
            return []
        out = self._run(self._loglik(requests))
        self.calls += len(requests)
        return out

    async def _loglik(self, requests: Sequence[LoglikRequest]) -> list[tuple[float, int]]:
        model = await self._model_name()

        async def one(r: LoglikRequest) -> tuple[float, int]:
            if not r.continuation:
                return 0.0, 0
            rendered = self.render(r.prompt)
            if self.prompt_format == "tokens":
                p = encode_prompt(self.tokenizer, self.model.kind, rendered)
                c = encode_continuation(self.tokenizer, r.continuation)
                resp = await self.http.request("POST", "/completions",
                                           loglik_body(model, p + c, self.extra_body))
                return loglik_from_tokens(resp, len(p), len(c))
            resp = await self.http.request("POST", "/completions",
                                       loglik_body(model, rendered + r.continuation,
                                                   self.extra_body))
            return loglik_from_text(resp, r.continuation)

        return await self.http.gather([one(r) for r in requests])

    # ---- closing -----------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()
