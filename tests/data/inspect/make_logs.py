"""Make the small Inspect logs the ``gvstore import inspect`` tests read (tests/data/inspect).

A tiny arithmetic task defined here in code, run by Inspect itself (``inspect_ai.eval``) on
its ``mockllm/model`` provider with fixed outputs, 3 epochs, three scorers:

* ``match()``: Inspect's own scorer, "C"/"I" values (the ground truth the importer grades by);
* ``includes()``: Inspect's own scorer, "C"/"I" values (becomes a cot_binary verifier);
* ``reward()``: a stand-in for a reward model, a number in [0, 1] (becomes an mc verifier).

The outputs are fixed per question: the n-th time a question is asked it gets its n-th answer
(a callable ``custom_outputs``; ``max_samples=1`` runs one sample at a time, epoch after
epoch). Some are right, some wrong, one holds ``<script>alert(1)</script>``, one an ANSI
escape, one is empty. In its epoch 2 the sample ``boom`` raises in the solver (an errored
sample: Inspect logs it with its error and does not score it); the sample ``silent`` never
calls the model (no output; Inspect still scores it, as wrong).

Run from the repository root:

    .venv/bin/python tests/data/inspect/make_logs.py tests/data/inspect

It writes ``eval/<run>.eval`` and ``json/<run>.json`` (two runs of the same task, one per log
format). The tests call ``run`` too, into a temporary folder, to check the format against the
installed Inspect.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

ANSWERS: dict[str, list[str]] = {
    "What is 2 + 3?": ["The answer is 5", "The answer is 6", "5"],
    "What is 7 * 6?": ["42", "I think 42 or maybe 41", "It is 24"],
    "What is 10 - 4?": ["6 <script>alert(1)</script>", "\x1b[31m6\x1b[0m", "The answer is 6"],
    "What is 9 + 8?": ["17", "17", "18"],
    "What is 1 / 0?": ["undefined", "", "It is undefined"],
}
TASK = "arith_mock"


def _samples() -> list[Any]:
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser

    return [
        Sample(id="add-1", input="What is 2 + 3?", target="5"),
        Sample(id="mul-2", input="What is 7 * 6?", target="42"),
        Sample(id="sub-3", target="6", input=[
            ChatMessageSystem(content="Answer with a number."),
            ChatMessageUser(content="What is 10 - 4?")]),
        Sample(id=4, input="What is 9 + 8?", target=["17", "seventeen"]),
        Sample(id="boom", input="What is 1 / 0?", target="undefined"),
        Sample(id="silent", input="Say nothing.", target="nothing"),
    ]


def _model() -> Any:
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    asked: Counter[str] = Counter()

    def answer(messages: list[Any], *_: Any) -> Any:
        question = messages[-1].text
        n = asked[question]
        asked[question] += 1
        out = ModelOutput.from_content("mockllm/model", ANSWERS[question][n % 3])
        # usage given, so mockllm does not count tokens with tiktoken (a download)
        out.usage = ModelUsage(input_tokens=len(question.split()),
                               output_tokens=len(out.completion.split()))
        return out

    return get_model("mockllm/model", custom_outputs=answer)


def _task() -> Any:
    from inspect_ai import Task
    from inspect_ai.scorer import Score, Target, includes, match, mean, scorer
    from inspect_ai.solver import Generate, TaskState, generate, solver

    @solver
    def maybe_generate() -> Any:
        gen = generate()

        async def solve(state: TaskState, generate_fn: Generate) -> TaskState:
            if state.sample_id == "boom" and state.epoch == 2:
                raise ZeroDivisionError("division by zero (on purpose)")
            if state.sample_id == "silent":
                return state
            out: TaskState = await gen(state, generate_fn)
            return out

        return solve

    @scorer(metrics=[mean()])
    def reward() -> Any:
        async def score(state: TaskState, target: Target) -> Score:
            text = state.output.completion
            hit = any(t in text for t in target.target)
            value = round((0.8 if hit else 0.2) + 0.02 * (len(text) % 5), 2)
            return Score(value=value, explanation=f"reward {value} for {len(text)} chars")

        return score

    return Task(name=TASK, dataset=_samples(), solver=maybe_generate(),
                scorer=[match(), includes(), reward()], epochs=3)


def run(out_dir: Path | str, log_format: str) -> Path:
    """Run the task once and return the log Inspect wrote (``out_dir/<format>/...``)."""
    from inspect_ai import eval as inspect_eval

    folder = Path(out_dir) / log_format
    logs = inspect_eval(_task(), model=_model(), log_dir=str(folder), log_format=log_format,
                        display="none", max_samples=1, fail_on_error=False,
                        log_level="error")
    (log,) = logs
    assert log.location, "Inspect wrote no log"
    return Path(log.location)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    for fmt in ("eval", "json"):
        print(run(target, fmt))
