"""What every verification method shares: the run's spec and summary, the generations to
verify, the problem text a verifier is shown, seeds and batch layouts."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec

from gvstore.errors import GvstoreError
from gvstore.records import Generation, Prompt, Sampling
from gvstore.store import Store
from gvstore.verifiers.templates import METHODS

T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]
"""Called as ``(calls done, calls to do)``: verifications, or tournament matches."""

DEFAULT_SAMPLING = Sampling(temperature=0.7, top_p=1.0, max_tokens=128)


def request_seed(base_seed: int, *parts: object) -> int:
    """The seed of one request, derived from what identifies it."""
    text = "|".join([str(base_seed), *map(str, parts)])
    h = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class VerifySpec:
    """What one verify run asks for (the generations are selected apart).

    ``sampling`` applies to the sampled methods (``cot_*``, ``tournament``); ``mc`` scores
    log-likelihoods and records no sampling. ``repeats`` is m, the verifications per
    generation (for a tournament: independent tournaments, each with its own A/B orders and
    seeds; the analysis reads the first). ``rounds`` is r: tournament brackets hold 2**r
    samples. ``verifier_kind`` is the verifier model's kind (``instruct`` or ``base``), which
    decides how ``mc`` phrases its answers.
    """

    method: str
    verifier: str
    verifier_digest: str
    backend: str = "transformers"
    verifier_kind: str = "instruct"
    sampling: Sampling = DEFAULT_SAMPLING
    repeats: int = 1
    rounds: int = 3
    seed: int = 0
    batch_size: int = 8

    def check(self) -> None:
        if self.method not in METHODS:
            raise GvstoreError(f"unknown verification method {self.method!r}; "
                               f"choose from {', '.join(METHODS)}")
        if self.repeats < 1:
            raise GvstoreError(f"repeats (verifications per generation) must be >= 1, "
                               f"got {self.repeats}")
        if self.method == "mc" and self.repeats != 1:
            raise GvstoreError(
                "mc scores log-likelihoods, which are deterministic: a repeat would give the "
                f"same score again. Use repeats 1 for mc (got {self.repeats}); repeats measure "
                "the variance of the sampled methods (cot_binary, cot_score, tournament)"
            )
        if self.batch_size < 1:
            raise GvstoreError(f"batch size must be >= 1, got {self.batch_size}")
        if not 1 <= self.rounds <= 16:
            raise GvstoreError(f"tournament rounds must be 1..16 (brackets of 2**rounds "
                               f"samples), got {self.rounds}")
        sp = self.sampling
        if sp.temperature < 0 or not 0 < sp.top_p <= 1 or sp.top_k < 0 or sp.max_tokens < 1:
            raise GvstoreError(
                "sampling needs temperature >= 0, 0 < top_p <= 1, top_k >= 0, max_tokens >= 1"
            )


@dataclass
class VerifySummary:
    """What a verify run did. ``statuses`` and ``histogram`` cover every record the run's plan
    names (those already stored and those made now); timings cover the calls made now."""

    method: str
    verifier: str
    generations: int = 0
    no_prompt: int = 0
    """Generations skipped because the store holds no prompt record for them."""
    requested: int = 0
    present: int = 0
    verified: int = 0
    """Records written now (verifications, or tournament matches)."""
    batches_run: int = 0
    extra: int = 0
    """Calls made again only to keep a partly written batch's layout (not written)."""
    seconds: float = 0.0
    model_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    histogram: dict[str, int] = field(default_factory=dict)
    # tournament only
    rounds_played: int = 0
    byes: int = 0
    decided: int = 0
    a_wins: int = 0
    foreign: int = 0
    """Round-0 matches already stored for these prompts by this verifier that this plan does
    not name (another bracket size, base seed, sampling or template): the analysis would read
    both tournaments together."""

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def parse_failure_rate(self) -> float | None:
        n = self.total
        return (n - self.statuses.get("ok", 0)) / n if n else None

    @property
    def seconds_per_call(self) -> float | None:
        return self.model_seconds / self.verified if self.verified else None

    @property
    def position_bias(self) -> float | None:
        """Share of decided tournament matches won by side A (0.5: no bias)."""
        return self.a_wins / self.decided if self.decided else None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "method": self.method, "verifier": self.verifier,
            "generations": self.generations, "no_prompt": self.no_prompt,
            "requested": self.requested, "present": self.present, "verified": self.verified,
            "batches_run": self.batches_run, "extra": self.extra,
            "seconds": round(self.seconds, 3), "model_seconds": round(self.model_seconds, 3),
            "seconds_per_call": _round(self.seconds_per_call),
            "parse_failure_rate": _round(self.parse_failure_rate),
            "statuses": dict(sorted(self.statuses.items())), "histogram": self.histogram,
        }
        if self.method == "tournament":
            out |= {"rounds_played": self.rounds_played, "byes": self.byes,
                    "decided": self.decided, "a_wins": self.a_wins,
                    "position_bias": _round(self.position_bias), "foreign": self.foreign}
        return out


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def histogram(method: str, scores: Iterable[float | None]) -> dict[str, int]:
    """Counts of non-null scores: tenths for ``mc``, whole numbers for ``cot_score`` (8.5 counts
    as 8), 0/1 for ``cot_binary``."""
    out: dict[str, int] = {}
    if method == "mc":
        labels = [f"{k / 10:.1f}-{(k + 1) / 10:.1f}" for k in range(10)]
        out = dict.fromkeys(labels, 0)
        for s in scores:
            if s is not None:
                out[labels[min(int(s * 10), 9)]] += 1
        return out
    if method == "cot_score":
        out = {str(k): 0 for k in range(1, 11)}
    elif method == "cot_binary":
        out = {"0": 0, "1": 0}
    for s in scores:
        if s is not None and math.isfinite(s):
            label = str(math.floor(s))
            out[label] = out.get(label, 0) + 1
    return out


# ---- the generations to verify ----------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Generations of one task (and optionally one generator and round), with their prompts,
    in a fixed order: prompt (by item id), then sample index, then id."""

    generations: list[Generation]
    prompts: dict[str, Prompt]
    no_prompt: int = 0


def select(store: Store, task: str, generator: str | None = None,
           round_: int | None = None, prompt_ids: Collection[str] | None = None) -> Selection:
    """The generations of ``task`` in the store (one scan), filtered by generator, round and
    (``prompt_ids``) prompt record id."""
    gens: list[Generation] = []
    prompts: dict[str, Prompt] = {}
    for rec in store.iter_records(kinds=("prompt", "generation")):
        if isinstance(rec, Prompt):
            prompts[rec.id] = rec
        elif isinstance(rec, Generation) and rec.task == task:
            if generator is not None and rec.model != generator:
                continue
            if round_ is not None and rec.round != round_:
                continue
            gens.append(rec)
    kept = [g for g in gens if g.prompt_id in prompts
            and (prompt_ids is None or g.prompt_id in prompt_ids)]

    def order(g: Generation) -> tuple[str, str, int, str]:
        p = prompts[g.prompt_id]
        return (p.item_id, p.id, g.sample_index, g.id)

    kept.sort(key=order)
    used = {g.prompt_id for g in kept}
    return Selection(kept, {k: v for k, v in prompts.items() if k in used},
                     len(gens) - len(kept))


def problem_text(prompt: Prompt) -> str:
    """The question of a prompt record, without its instruction and k-shot exemplars.

    The task's ``question_format`` wraps the question at the end of the prompt text; its last
    occurrence is cut out. A task that is not registered here, or a text that does not end
    the way its format says, gives the whole prompt text.
    """
    from gvstore.tasks.registry import task_class

    try:
        fmt = task_class(prompt.task).question_format
    except GvstoreError:
        return prompt.text.strip()
    head, sep, tail = fmt.partition("{question}")
    text = prompt.text
    if not sep or not text.endswith(tail):
        return text.strip()
    body = text[: len(text) - len(tail)] if tail else text
    start = body.rfind(head) if head else 0
    if start < 0:
        return text.strip()
    return body[start + len(head):].strip()


def solution_text(gen: Generation) -> str:
    """The generation as the verifier sees it (surrounding whitespace dropped)."""
    return gen.text.strip()


def cut(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive batches of ``size``."""
    return [list(items[k:k + size]) for k in range(0, len(items), size)]


def sampling_tag(sp: Sampling) -> str:
    """Canonical text of sampling parameters, for seeds of records without a sampling field."""
    return msgspec.json.encode(sp, order="sorted").decode()
