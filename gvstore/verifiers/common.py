"""What every verification method shares: the problem and solution text a verifier is
shown, and the sampling tag of seeds. (The run's spec, summary and selection of
generations are the verify step's: ``gvstore.steps.verify``.)"""

from __future__ import annotations

import msgspec

from gvstore.errors import GvstoreError
from gvstore.records import Generation, Prompt, Sampling


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


def sampling_tag(sp: Sampling) -> str:
    """Canonical text of sampling parameters, for seeds of records without a sampling field."""
    return msgspec.json.encode(sp, order="sorted").decode()
