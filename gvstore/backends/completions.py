"""The ``/v1/completions`` wire format of the ``openai`` back end: request bodies built and
answers read (pure functions, no I/O; ``gvstore.backends.http`` sends them through
``gvstore.backends.transport``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gvstore.backends.base import Sample
from gvstore.errors import GvstoreError
from gvstore.records import Sampling


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
