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
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import os
import random
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from gvstore.backends.base import LoglikRequest, Sample, SampleRequest
from gvstore.backends.vllm_backend import (
    Group,
    encode_continuation,
    encode_prompt,
    group_requests,
    render_prompt,
)
from gvstore.errors import GvstoreError
from gvstore.models import DEFAULT_MODELS_DIR, ModelSpec, Resolved, resolve
from gvstore.records import Sampling

T = TypeVar("T")
URLS_ENV = "GVSTORE_OPENAI_BASE_URLS"
"""Where the base URLs come from when none are given (the CLI passes none)."""
ALLOW_HTTP_KEY_ENV = "GVSTORE_OPENAI_ALLOW_HTTP_KEY"
"""Set to ``1`` to send an API key over plain HTTP to a host that is not loopback."""
RETRY_STATUS = frozenset({408, 409, 425, 429})
"""Statuses sent again (besides every 5xx): timeouts, conflicts and rate limits."""
ERROR_BODY_BYTES = 64 * 1024
"""How much of a non-200 answer is read (its start goes into the error message)."""
CHUNK_BYTES = 64 * 1024

# The defaults, and the bounds each setting is checked against (inclusive unless noted).
DEFAULT_TIMEOUT_S = 120.0
"""One try: a 512-token completion (the study's longest) at 5 tokens/s is 102 s; the rest is
for its prefill and a short wait in the server's queue."""
DEFAULT_DEADLINE_S = 300.0
"""One request, every try and back-off included."""
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""An answer of 512 tokens with ``logprobs`` is under 1 MiB; an echoed 8k-token prompt ~2 MiB."""
MAX_TIMEOUT_S = 3600.0
MAX_DEADLINE_S = 86400.0
MAX_RETRIES = 100
MAX_CONCURRENCY = 4096
MIN_RESPONSE_BYTES = 1024
MAX_RESPONSE_BYTES = 1024 ** 3


def _one_line(text: str, limit: int = 200) -> str:
    """The start of a server's text for an error message: newlines and control characters
    escaped (``repr``), so the message stays one line."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host, no port) is this machine: 127.0.0.0/8, ``::1`` (also
    as an IPv4-mapped address) or ``localhost``. Names are not resolved."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def normalise_urls(base_urls: Sequence[str] | str) -> list[str]:
    """Base URLs ending in ``/v1``; a string may hold several, comma-separated."""
    raw = base_urls.split(",") if isinstance(base_urls, str) else list(base_urls)
    urls = []
    for u in raw:
        u = u.strip().rstrip("/")
        if not u:
            continue
        if not u.startswith(("http://", "https://")):
            raise GvstoreError(f"base URL {u!r} must start with http:// or https://")
        try:
            parts = urlsplit(u)
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError as exc:
            raise GvstoreError(f"base URL {u!r} is not a valid URL: {exc}") from exc
        if not parts.hostname:
            raise GvstoreError(f"base URL {u!r} has no host")
        if "@" in parts.netloc:
            # it would be printed in every error message; a key goes in api_key
            raise GvstoreError(f"base URL {parts.scheme}://...@{parts.hostname} holds a user "
                               "name or password: pass the key as api_key instead")
        urls.append(u if u.endswith("/v1") else u + "/v1")
    if not urls:
        raise GvstoreError("the openai back end needs at least one base URL (base_urls)")
    return urls


def check_key_transport(urls: Sequence[str], key_from: str, allow_http_key: bool) -> None:
    """Refuse to send an API key in clear text off this machine: with a key, every ``http://``
    URL must have a loopback host, unless ``allow_http_key``."""
    if allow_http_key:
        return
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise GvstoreError(
                f"refusing to send the API key ({key_from}) over plain HTTP to {u}: use "
                f"https://, a loopback address, or allow_http_key=True (${ALLOW_HTTP_KEY_ENV}=1)"
                " on a network you trust")


def _number(name: str, value: object, low: float, high: float, *, low_open: bool = False,
            unit: str = "") -> float:
    """``value`` as a float checked against [low, high] (``(low, high]`` with ``low_open``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    v = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not ok or not (low < v <= high if low_open else low <= v <= high):
        lo = "(" if low_open else "["
        raise GvstoreError(f"the openai back end's {name} must be in {lo}{low:g}, {high:g}]"
                           f"{unit}, got {value!r}")
    return v


def _count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GvstoreError(f"the openai back end's {name} must be an integer in [{low}, {high}]"
                           f", got {value!r}")
    return value


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


# ---- request bodies and responses (pure) --------------------------------------------------


def completion_body(model: str, prompt: str | list[int], sp: Sampling, *, n: int, seed: int,
                    logprobs: int | None = None, extra: dict[str, Any] | None = None,
                    top_k_off: int = -1) -> dict[str, Any]:
    """The JSON body of one sampling request to ``/v1/completions``. ``top_k`` is always sent
    (servers otherwise apply their own or the model's default cut); ``top_k_off`` is how
    "no cut" is spelled."""
    if sp.temperature == 0 and n > 1:
        raise GvstoreError("greedy sampling (temperature 0) gives one sample per request")
    body: dict[str, Any] = {
        "model": model, "prompt": prompt, "max_tokens": sp.max_tokens,
        "temperature": sp.temperature, "top_p": sp.top_p,
        "top_k": sp.top_k if sp.top_k > 0 else top_k_off, "n": n, "seed": seed,
    }
    if sp.stop:
        body["stop"] = list(sp.stop)
    if logprobs is not None:
        body["logprobs"] = logprobs
    body.update(extra or {})
    return body


def loglik_body(model: str, prompt: str | list[int],
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of one scoring request: the prompt echoed with each token's
    log-probability, one greedy token generated (servers differ on ``max_tokens=0``:
    llama.cpp reads it as "no limit")."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": 1,
                            "temperature": 0.0, "echo": True, "logprobs": 1}
    body.update(extra or {})
    return body


def _choices(resp: dict[str, Any], n: int) -> list[dict[str, Any]]:
    choices = resp.get("choices")
    if not isinstance(choices, list):
        raise GvstoreError(f"the server's answer has no choices: {str(resp)[:200]}")
    if len(choices) != n:
        raise GvstoreError(
            f"the server returned {len(choices)} choices for n={n}; a server that ignores n "
            "(llama.cpp's does) needs max_samples_per_request=1")
    return sorted(choices, key=lambda c: int(c.get("index", 0)))


def parse_samples(resp: dict[str, Any], n: int, count_tokens: Any) -> list[Sample]:
    """The ``n`` samples of one ``/v1/completions`` answer. ``count_tokens(text)`` counts a
    sample's tokens where ``usage`` cannot (several samples in one answer)."""
    out = []
    choices = _choices(resp, n)
    usage = resp.get("usage") or {}
    for ch in choices:
        text = ch.get("text")
        if not isinstance(text, str):
            raise GvstoreError(f"a choice without text: {str(ch)[:200]}")
        reason = ch.get("finish_reason")
        if reason not in ("stop", "length"):
            raise GvstoreError(f"the server ended a sample with finish_reason={reason!r}")
        if n == 1 and isinstance(usage.get("completion_tokens"), int):
            n_tokens = int(usage["completion_tokens"])
        else:
            n_tokens = int(count_tokens(text))
        out.append(Sample(text=text, n_tokens=n_tokens, finish_reason=reason))
    return out


def _echo_logprobs(resp: dict[str, Any]) -> tuple[list[str], list[float | None], int]:
    (ch,) = _choices(resp, 1)
    lp = ch.get("logprobs") or {}
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        raise GvstoreError("the server's answer has no echoed token log-probabilities "
                           "(does it support echo with logprobs on /v1/completions?)")
    generated = (resp.get("usage") or {}).get("completion_tokens")
    if not isinstance(generated, int) or not 0 <= generated <= len(tokens):
        raise GvstoreError("the server's answer lacks usage.completion_tokens")
    return tokens, values, len(tokens) - generated


def _sum(values: Sequence[float | None], start: int, stop: int) -> float:
    if start < 1:
        raise GvstoreError("a continuation needs at least one prompt token before it")
    part = values[start:stop]
    if any(v is None for v in part):
        raise GvstoreError("the server gave no log-probability for a continuation token")
    return float(sum(v for v in part if v is not None))


def loglik_from_tokens(resp: dict[str, Any], n_prompt: int, n_cont: int) -> tuple[float, int]:
    """(sum, count) of the continuation's log-probabilities in an echo answer to a token-id
    prompt: positions ``n_prompt .. n_prompt + n_cont`` of the echoed tokens."""
    _, values, end = _echo_logprobs(resp)
    if end != n_prompt + n_cont:
        raise GvstoreError(f"the server echoed {end} prompt tokens, {n_prompt + n_cont} sent")
    return _sum(values, n_prompt, end), n_cont


def loglik_from_text(resp: dict[str, Any], continuation: str) -> tuple[float, int]:
    """(sum, count) of the continuation's log-probabilities in an echo answer to a text
    prompt: the shortest run of echoed prompt tokens, ending at the prompt's end, that spells
    the continuation exactly."""
    tokens, values, end = _echo_logprobs(resp)
    acc = ""
    for k in range(1, end + 1):
        acc = tokens[end - k] + acc
        if acc == continuation:
            return _sum(values, end - k, end), k
        if len(acc) >= len(continuation):
            break
    raise GvstoreError(
        f"the server tokenised the prompt/continuation boundary of {continuation!r} into one "
        "token, so its log-probability cannot be separated; use prompt_format='tokens'")


# ---- the back end -----------------------------------------------------------------------


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
        self.concurrency = _count("concurrency", concurrency, 1, MAX_CONCURRENCY)
        self.max_retries = _count("max_retries", max_retries, 0, MAX_RETRIES)
        self.timeout = _number("timeout", timeout, 0, MAX_TIMEOUT_S, low_open=True, unit=" s")
        self.deadline = _number("deadline", deadline, self.timeout, MAX_DEADLINE_S,
                                unit=" s (at least timeout)")
        # (a try's connecting is bounded by the try's own time as well)
        self.connect_timeout = _number("connect_timeout", connect_timeout, 0, MAX_TIMEOUT_S,
                                       low_open=True, unit=" s")
        self.max_response_bytes = _count("max_response_bytes", max_response_bytes,
                                         MIN_RESPONSE_BYTES, MAX_RESPONSE_BYTES)
        self.max_backoff = _number("max_backoff", max_backoff, 0, MAX_TIMEOUT_S, unit=" s")
        self.backoff = _number("backoff", backoff, 0, self.max_backoff,
                               unit=" s (at most max_backoff)")
        self.model = model
        if base_urls is None:
            base_urls = os.environ.get(URLS_ENV, "")
            if not base_urls:
                raise GvstoreError(f"the openai back end needs base_urls, or ${URLS_ENV} set "
                                   "to the servers' URLs (comma-separated)")
        self.urls = normalise_urls(base_urls)
        key_from = "api_key"
        if api_key is None and os.environ.get("OPENAI_API_KEY"):
            api_key, key_from = os.environ["OPENAI_API_KEY"], "$OPENAI_API_KEY"
        self.api_key = api_key or None
        if allow_http_key is None:
            allow_http_key = os.environ.get(ALLOW_HTTP_KEY_ENV, "") == "1"
        if self.api_key:
            check_key_transport(self.urls, key_from, allow_http_key)
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
        self.attempts = 0  # HTTP requests sent, retries included
        self._next = 0
        self._jitter = random.Random()
        self._session: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="gvstore-openai", daemon=True)
        self._thread.start()

    # ---- the loop thread ---------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise GvstoreError("the openai back end is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _open(self) -> Any:
        import aiohttp

        if self._session is None:
            self._sem = asyncio.Semaphore(self.concurrency)
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            # No session-wide timeout: each try gets its own (see _request).
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(limit=self.concurrency),
            )
        return self._session

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.max_backoff, self.backoff * 2 ** attempt)
        delay = delay / 2 + self._jitter.uniform(0, delay / 2)
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP date: keep our own back-off
                delay = max(delay, min(float(retry_after), self.max_backoff))
        return delay

    async def _read_capped(self, resp: Any, url: str, cap: int, *, strict: bool) -> bytes:
        """At most ``cap`` bytes of an answer's body, read in chunks. Over the cap (a declared
        ``Content-Length`` or the bytes streamed so far): an error with ``strict``, else the
        first ``cap`` bytes (for an error message). The rest is never read."""
        declared = resp.content_length
        if strict and declared is not None and declared > cap:
            raise GvstoreError(f"{url} answered {declared} bytes, over the limit of {cap} bytes "
                               "(max_response_bytes)")
        buf = bytearray()
        while len(buf) <= cap:
            chunk = await resp.content.read(min(CHUNK_BYTES, cap + 1 - len(buf)))
            if not chunk:
                return bytes(buf)
            buf += chunk
        if strict:
            raise GvstoreError(f"{url} answered more than {cap} bytes, the limit "
                               "(max_response_bytes); stopped reading there")
        return bytes(buf[:cap])

    async def _try(self, session: Any, method: str, url: str, body: dict[str, Any] | None,
                   connect_timeout: float) -> tuple[dict[str, Any] | None, str, str | None]:
        """One try (its time bound is the caller's): (the answer, "", None), or (None, what
        went wrong, Retry-After) for a failure worth retrying. Other failures raise."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        async with session.request(method, url, json=body, allow_redirects=False,
                                   timeout=timeout) as resp:
            if resp.status == 200:
                raw = await self._read_capped(resp, url, self.max_response_bytes, strict=True)
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise GvstoreError(f"{url} answered with invalid JSON: "
                                       f"{_one_line(raw.decode('utf-8', 'replace'))}") from exc
                if not isinstance(data, dict):
                    raise GvstoreError(f"{url} answered {_one_line(str(data))}, not a JSON "
                                       "object")
                return data, "", None
            cap = min(ERROR_BODY_BYTES, self.max_response_bytes)
            text = (await self._read_capped(resp, url, cap, strict=False)).decode(
                "utf-8", "replace")
            if resp.status not in RETRY_STATUS and resp.status < 500:
                where = resp.headers.get("Location")
                moved = f" (redirect to {_one_line(where)} not followed)" if where else ""
                raise GvstoreError(f"{url} refused the request: HTTP {resp.status}{moved}: "
                                   f"{_one_line(text, 500)}")
            return None, f"HTTP {resp.status} from {url}: {_one_line(text)}", \
                resp.headers.get("Retry-After")

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
        """One request with retries, each try to the next server, each within ``timeout``
        seconds and all within ``deadline`` seconds of the first (time spent waiting for a
        free slot of ``concurrency`` is this client's queue, and does not count)."""
        import aiohttp

        session = await self._open()
        assert self._sem is not None
        loop = asyncio.get_running_loop()
        last = ""
        end: float | None = None
        tries = 0
        out_of_time = False
        for attempt in range(self.max_retries + 1):
            url = self.urls[self._next % len(self.urls)] + path
            self._next += 1
            retry_after: str | None = None
            queued = loop.time()
            async with self._sem:
                now = loop.time()
                end = now + self.deadline if end is None else end + (now - queued)
                budget = min(self.timeout, end - now)
                if budget <= 0:
                    out_of_time = True
                    break
                self.attempts += 1
                tries += 1
                started = now
                try:
                    async with asyncio.timeout(budget):
                        data, last, retry_after = await self._try(
                            session, method, url, body, min(budget, self.connect_timeout))
                    if data is not None:
                        return data
                except TimeoutError:
                    took = loop.time() - started
                    last = f"no answer from {url} within {took:.3g} s"
                except aiohttp.ClientError as exc:
                    last = f"{type(exc).__name__} from {url}: {_one_line(str(exc))}"
            if attempt < self.max_retries:
                delay = self._delay(attempt, retry_after)
                if loop.time() + delay >= end:
                    out_of_time = True
                    break
                await asyncio.sleep(delay)
        if out_of_time or (end is not None and loop.time() >= end):
            raise GvstoreError(f"{method} {path} got no answer within the deadline of "
                               f"{self.deadline:g} s ({tries} tries of at most "
                               f"{self.timeout:g} s; last: {last}); are the servers up "
                               f"({', '.join(self.urls)})?")
        raise GvstoreError(f"{method} {path} failed {tries} times (last: {last});"
                           f" are the servers up ({', '.join(self.urls)})?")

    async def _model_name(self) -> str:
        if self.served_model_name is None:
            data = await self._request("GET", "/models")
            ids = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
            if len(ids) != 1 or not isinstance(ids[0], str):
                raise GvstoreError(f"the server serves models {ids}; name one with "
                                   "served_model_name")
            self.served_model_name = ids[0]
        return self.served_model_name

    @staticmethod
    async def _all(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
        """Run all; on the first failure cancel the rest and raise that failure."""
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(c) for c in coros]
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        return [t.result() for t in tasks]

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
            return parse_samples(await self._request("POST", "/completions", body), g.n,
                                 self._count)

        return await self._all([one(g) for g in groups])

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
                resp = await self._request("POST", "/completions",
                                           loglik_body(model, p + c, self.extra_body))
                return loglik_from_tokens(resp, len(p), len(c))
            resp = await self._request("POST", "/completions",
                                       loglik_body(model, rendered + r.continuation,
                                                   self.extra_body))
            return loglik_from_text(resp, r.continuation)

        return await self._all([one(r) for r in requests])

    # ---- closing -----------------------------------------------------------------------

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close_session(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            loop.close()
