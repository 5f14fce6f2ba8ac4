"""Prompt rendering and sample decoding with a transformers tokenizer, shared by the back ends
that run a transformers model's tokenizer (``transformers``, ``ctranslate2``), so both see the
same text, the same token ids and cut samples the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any

from gvstore.backends.base import Sample, SampleRequest
from gvstore.records import Sampling


def render(tokenizer: Any, kind: str, prompt: str) -> str:
    """The text the model sees: through the chat template for instruct models (assistant turn
    opened), raw for base models."""
    if kind == "instruct" and tokenizer.chat_template:
        text: str = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True,
        )
        return text
    return prompt


def encode(tokenizer: Any, kind: str, text: str) -> list[int]:
    """Token ids of a rendered prompt (the chat template already holds its special tokens)."""
    ids: list[int] = tokenizer(text, add_special_tokens=kind != "instruct")["input_ids"]
    return ids


def eos_ids(tokenizer: Any) -> set[int]:
    """The end-of-sequence token ids."""
    eos = tokenizer.eos_token_id
    return set(eos) if isinstance(eos, list) else {eos}


def finish(tokenizer: Any, row: list[int], sp: Sampling) -> Sample:
    """A sample from its generated token ids: cut at the first end-of-sequence token (not
    counted) and at the first stop string (finish reason ``"stop"``); else ``"length"``."""
    eos = eos_ids(tokenizer)
    n = len(row)
    reason = "length"
    for j, t in enumerate(row):
        if t in eos:
            n, reason = j, "stop"
            break
    text: str = tokenizer.decode(row[:n], skip_special_tokens=True)
    for s in sp.stop:
        cut = text.find(s)
        if cut >= 0:
            text, reason = text[:cut], "stop"
    return Sample(text=text, n_tokens=n, finish_reason=reason)


def batches(requests: Sequence[SampleRequest], batch_size: int,
            ) -> list[tuple[Sequence[SampleRequest], Sampling]]:
    """Consecutive requests that share their sampling parameters, at most ``batch_size`` a
    batch, in request order (how both CPU engines batch ``sample``)."""
    out: list[tuple[Sequence[SampleRequest], Sampling]] = []
    for sampling, group in groupby(requests, key=lambda r: r.sampling):
        reqs = list(group)
        out.extend((reqs[i:i + batch_size], sampling) for i in range(0, len(reqs), batch_size))
    return out


def sample_in_batches(requests: Sequence[SampleRequest], batch_size: int,
                      run: Callable[[Sequence[SampleRequest], Sampling], list[Sample]],
                      ) -> list[Sample]:
    """``run`` over ``batches(requests, batch_size)``, one after another."""
    out: list[Sample] = []
    for reqs, sampling in batches(requests, batch_size):
        out.extend(run(reqs, sampling))
    return out
