"""The task interface: items, prompts with k-shot exemplars, references, and a grader.

A task is one module with one ``Task`` subclass, registered by name in ``registry.py``. The
paper's utility u(x, y) is ``Task.grade(text, reference)``, kept in two flavours:

* ``strict``: the answer is given in the form the prompt asks for, and is right;
* ``flexible``: a lenient extraction (the last number, the last boxed expression, ...) is right.

``version`` names the grading logic: bump it whenever ``grade`` can give a different result
for the same text, so that ``grade_store`` grades again instead of trusting old records.
A task may also offer a separately named grader (``variant``, e.g. ``lm-eval``: the harness's
exact rules, for comparable numbers): a subclass registered in ``registry.VARIANTS`` whose
grades are recorded under ``grader_id`` (``gsm8k:lm-eval``), never under the task's own name.
Graders never raise on model text and return in bounded time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gvstore.digest import digest
from gvstore.errors import GvstoreError
from gvstore.records import Prompt


@dataclass(frozen=True)
class Item:
    """One task item: its id (stable within the split), the question and the reference."""

    item_id: str
    question: str
    reference: str
    split: str = "test"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Exemplar:
    """A solved example shown before the question (``answer`` is the full worked answer)."""

    question: str
    answer: str


@dataclass(frozen=True)
class GradeResult:
    """The utility of one answer: strict and flexible in [0, 1], and what was extracted."""

    strict: float
    flexible: float
    extracted: str | None


class Task(ABC):
    """A task: a prompt distribution and a utility. Subclasses set the class attributes."""

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("test",)
    default_kshot: ClassVar[int] = 0
    # format strings of one rendered question and one shot; part of the template digest
    question_format: ClassVar[str] = "Q: {question}\nA:"
    shot_format: ClassVar[str] = "Q: {question}\nA: {answer}"
    shot_separator: ClassVar[str] = "\n\n"
    instruction: ClassVar[str] = ""
    variant: ClassVar[str] = ""  # "" for the task's own grader
    # the ``Item.meta`` key whose value is an item's stratum (``select: stratified`` spreads a
    # draw evenly over them, ``tasks/select.py``); None: no strata (a plain seeded sample)
    stratum_key: ClassVar[str | None] = None

    @property
    def grader_id(self) -> str:
        """The name its grades are recorded under: the task's, or ``<task>:<variant>``."""
        return f"{self.name}:{self.variant}" if self.variant else self.name

    def __init__(self, data_path: Path | str | None = None) -> None:
        self.data_path = data_path

    # ---- items -----------------------------------------------------------------------------

    @abstractmethod
    def items(self, split: str = "test", path: Path | str | None = None) -> list[Item]:
        """The items of ``split``; ``path`` overrides where the data is read from."""

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise GvstoreError(
                f"task {self.name!r} has no split {split!r}; splits: {', '.join(self.splits)}"
            )

    # ---- prompts ---------------------------------------------------------------------------

    def exemplars(self) -> Sequence[Exemplar]:
        """The k-shot exemplars, in the order they are used (the first k are taken)."""
        return ()

    def shots(self, kshot: int | None) -> list[Exemplar]:
        k = self.default_kshot if kshot is None else kshot
        ex = list(self.exemplars())
        if k < 0 or k > len(ex):
            raise GvstoreError(
                f"task {self.name!r} has {len(ex)} exemplars; kshot must be 0..{len(ex)}, got {k}"
            )
        return ex[:k]

    def template_text(self, kshot: int | None = None) -> str:
        """Everything about a prompt that is not the question: formats and the shots."""
        shots = self.shot_separator.join(
            self.shot_format.format(question=e.question, answer=e.answer)
            for e in self.shots(kshot)
        )
        return "\x1f".join([self.instruction, shots, self.shot_separator, self.question_format])

    def template_digest(self, kshot: int | None = None) -> str:
        return digest({"task": self.name, "template": self.template_text(kshot)})

    def render(self, item: Item, kshot: int | None = None) -> str:
        """The exact prompt text: instruction, k shots, then the question."""
        parts = [self.instruction] if self.instruction else []
        parts += [
            self.shot_format.format(question=e.question, answer=e.answer)
            for e in self.shots(kshot)
        ]
        parts.append(self.question_format.format(question=item.question))
        return self.shot_separator.join(parts)

    def prompt_record(self, item: Item, kshot: int | None = None) -> Prompt:
        """The ``Prompt`` record of an item (not sealed; the store writer seals it)."""
        k = self.default_kshot if kshot is None else kshot
        return Prompt(
            task=self.name, split=item.split, item_id=item.item_id, kshot=k,
            template=self.template_digest(k), text=self.render(item, k),
            reference=item.reference,
        )

    # ---- grading ---------------------------------------------------------------------------

    @abstractmethod
    def grade(self, text: str, reference: str) -> GradeResult:
        """The utility of model ``text`` against ``reference``. Never raises on ``text``."""
