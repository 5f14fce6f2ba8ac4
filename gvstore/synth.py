"""A seeded simulator that writes a synthetic store, so analysis can be tried without a model.

Per prompt, the generator's accuracy p is drawn from Beta(alpha, beta); each sample is correct
with probability p. Verifier scores are drawn conditional on correctness, with a chosen
``discrimination`` (0: scores carry no information, larger: correct answers score higher):

* ``mc``: s = sigmoid(d * (2u - 1) + N(0, 1)), with P(Correct) = s and P(Incorrect) = 1 - s
  before normalisation (as the real verifier records them);
* ``cot_binary``: s ~ Bernoulli(sigmoid(d * (2u - 1) + N(0, 1)));
* ``cot_score``: s = clip(round(5.5 + 2 d (u - 0.5) + N(0, 2)), 1, 10);
* ``tournament``: single-elimination brackets of 2**rounds; the sample with the higher latent
  quality wins (latent = d * u + N(0, 1));
* any other registered method (``gvstore.verifiers.registry``) of the sample or loglik kind:
  s = lo + (hi - lo) * sigmoid(d * (2u - 1) + N(0, 1)) over its score range [lo, hi]
  (default [0, 1]); of the pairwise kind: brackets as for ``tournament``.

With probability ``parse_failure`` a sampled verification (every method but the loglik kind,
``mc``) or a match gets no verdict (score or winner null). The texts are synthetic word
salad ending with the answer line, so record sizes and compression resemble, but are not,
real model output.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from gvstore.errors import GvstoreError
from gvstore.records import (
    Comparison,
    Generation,
    Grade,
    Prompt,
    Record,
    Sampling,
    Verification,
    seal,
)
from gvstore.verifiers.registry import get_method, is_method, method_names

_WORDS = (
    "the", "we", "so", "first", "then", "add", "subtract", "multiply", "divide", "total", "each",
    "number", "answer", "is", "of", "to", "and", "which", "gives", "left", "remaining", "apples",
    "pages", "dollars", "minutes", "hours", "students", "boxes", "per", "more", "less", "than",
    "twice", "half", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "step",
    "result", "sum", "product", "difference", "now", "since", "because", "therefore", "means",
    "has", "had", "were", "was", "are", "buys", "sells", "pays",
)


@dataclass(frozen=True)
class SynthConfig:
    prompts: int = 100
    samples: int = 8
    methods: tuple[str, ...] = ("mc", "cot_score")
    seed: int = 0
    alpha: float = 2.0
    beta: float = 2.0
    discrimination: float = 1.5
    parse_failure: float = 0.05
    repeats: int = 1
    tournament_rounds: int = 3
    task: str = "synth"
    generator: str = "sim-gen"
    verifier: str = "sim-ver"
    text_words: int = 60

    def check(self) -> None:
        if self.prompts < 1 or self.samples < 1:
            raise GvstoreError("synth needs at least 1 prompt and 1 sample")
        bad = [m for m in self.methods if not is_method(m)]
        if bad:
            raise GvstoreError(f"unknown method {bad[0]!r}; "
                               f"choose from {', '.join(method_names())}")
        if not 0.0 <= self.parse_failure <= 1.0:
            raise GvstoreError(f"parse failure rate must be in [0, 1], got {self.parse_failure}")
        if self.alpha <= 0 or self.beta <= 0:
            raise GvstoreError("Beta parameters must be positive")
        if self.repeats < 1 or self.tournament_rounds < 1:
            raise GvstoreError("repeats and tournament rounds must be >= 1")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _text(rng: random.Random, words: int, answer: int) -> str:
    body = " ".join(rng.choice(_WORDS) if rng.random() < 0.8 else str(rng.randrange(1000))
                    for _ in range(words))
    return f"{body}. The answer is {answer}."


def generate(cfg: SynthConfig) -> Iterator[Record]:
    """Yield sealed records: prompts, generations, grades, verifications, comparisons."""
    cfg.check()
    rng = random.Random(cfg.seed)
    sampling = Sampling(temperature=0.7, top_p=0.9, max_tokens=256)
    d = cfg.discrimination
    for i in range(cfg.prompts):
        ref = rng.randrange(1000)
        prompt = seal(Prompt(task=cfg.task, item_id=str(i), text=f"Question {i}: compute it.",
                             reference=str(ref)))
        yield prompt
        p = rng.betavariate(cfg.alpha, cfg.beta)
        gens: list[tuple[Generation, int]] = []
        for j in range(cfg.samples):
            u = 1 if rng.random() < p else 0
            answer = ref if u else ref + rng.randrange(1, 50)
            gen = seal(Generation(
                prompt_id=prompt.id, task=cfg.task, model=cfg.generator, backend="synth",
                sampling=sampling, sample_index=j, seed=cfg.seed * 1_000_003 + i * 1009 + j,
                text=_text(rng, cfg.text_words, answer), n_tokens=cfg.text_words + 6,
                finish_reason="stop",
            ))
            gens.append((gen, u))
            yield gen
            yield seal(Grade(generation_id=gen.id, grader=cfg.task, strict=float(u),
                             flexible=float(u), extracted=str(answer)))
            for method in cfg.methods:
                if get_method(method).call == "pairwise":
                    continue
                for m in range(cfg.repeats):
                    yield _verification(rng, cfg, gen.id, method, m, u, d)
        for method in cfg.methods:
            if get_method(method).call == "pairwise":
                yield from _tournament(rng, cfg, prompt.id, gens, d, method)


ScoreModel = Callable[[random.Random, int, float], tuple[float, str]]
"""(rng, correct 0/1, discrimination) -> (score, raw text) of one verification."""


def _mc(rng: random.Random, u: int, d: float) -> tuple[float, str]:
    s = _sigmoid(d * (2 * u - 1) + rng.gauss(0, 1))
    return s, " Correct" if s >= 0.5 else " Incorrect"


def _cot_binary(rng: random.Random, u: int, d: float) -> tuple[float, str]:
    s = 1.0 if rng.random() < _sigmoid(d * (2 * u - 1) + rng.gauss(0, 1)) else 0.0
    return s, "Checked the steps. Correctness: " + ("correct" if s else "incorrect")


def _cot_score(rng: random.Random, u: int, d: float) -> tuple[float, str]:
    s = float(min(10, max(1, round(5.5 + 2 * d * (u - 0.5) + rng.gauss(0, 2)))))
    return s, f"Checked the steps. Score: {int(s)}"


SCORE_MODELS: dict[str, ScoreModel] = {"mc": _mc, "cot_binary": _cot_binary,
                                       "cot_score": _cot_score}
"""The built-in methods' score models; any other method gets ``_ranged``."""


def _ranged(method: str) -> ScoreModel:
    lo, hi = get_method(method).score_range or (0.0, 1.0)

    def model(rng: random.Random, u: int, d: float) -> tuple[float, str]:
        s = lo + (hi - lo) * _sigmoid(d * (2 * u - 1) + rng.gauss(0, 1))
        return s, f"Checked the steps. Score: {s}"

    return model


def _verification(rng: random.Random, cfg: SynthConfig, gen_id: str, method: str, m: int,
                  u: int, d: float) -> Verification:
    loglik = get_method(method).call == "loglik"
    failed = not loglik and rng.random() < cfg.parse_failure
    s, raw = (SCORE_MODELS.get(method) or _ranged(method))(rng, u, d)
    # a loglik method records P(Correct) = s and P(Incorrect) = 1 - s, as the real one does
    p_c, p_i = (s, 1.0 - s) if loglik else (None, None)
    score: float | None = s
    status = "ok"
    if failed:
        score, status, raw = None, "no_verdict", "Checked the steps but never said."
    return seal(Verification(
        generation_id=gen_id, verifier=cfg.verifier, method=method, template=f"synth-{method}",
        backend="synth", sample_index=m, seed=cfg.seed + m, raw=raw, score=score,
        parse_status=status, p_correct=p_c, p_incorrect=p_i,
    ))


def _tournament(rng: random.Random, cfg: SynthConfig, prompt_id: str,
                gens: Sequence[tuple[Generation, int]], d: float,
                method: str) -> Iterator[Comparison]:
    size = 2 ** cfg.tournament_rounds
    quality = {g.id: d * u + rng.gauss(0, 1) for g, u in gens}
    for b, start in enumerate(range(0, len(gens), size)):
        alive = [g.id for g, _ in gens[start:start + size]]
        for r in range(cfg.tournament_rounds):
            nxt: list[str] = []
            for k in range(0, len(alive), 2):
                if k + 1 == len(alive):  # a bye
                    nxt.append(alive[k])
                    continue
                a, bb = alive[k], alive[k + 1]
                if rng.random() < 0.5:
                    a, bb = bb, a
                if rng.random() < cfg.parse_failure:
                    winner, status = None, "no_verdict"
                    nxt.append(a)  # an undecided match advances the A side, as recorded
                else:
                    winner = a if quality[a] >= quality[bb] else bb
                    status = "ok"
                    nxt.append(winner)
                yield seal(Comparison(
                    prompt_id=prompt_id, generation_a=a, generation_b=bb, verifier=cfg.verifier,
                    method=method, template=f"synth-{method}", backend="synth", bracket=b,
                    bracket_round=r, seed=cfg.seed,
                    raw=("A" if winner == a else "B") if winner else "?", winner=winner,
                    parse_status=status,
                ))
            alive = nxt
            if len(alive) == 1:
                break


def write(store_writer: Callable[[Record], object], cfg: SynthConfig) -> int:
    """Feed every synthetic record to ``store_writer`` (e.g. ``Writer.add``); returns count."""
    n = 0
    for rec in generate(cfg):
        store_writer(rec)
        n += 1
    return n
