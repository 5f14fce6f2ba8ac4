"""The grade step: ground-truth utilities u(x, y) for every generation that lacks one.

``grade_store`` reads the prompts (for their references) and generations of a store, works out
the ``Grade`` key each generation would get from its task's current grader (task name and
``Task.version``), asks the store which of those keys are missing, grades only those, and
appends the new ``Grade`` records under ``grade/<task>``. A second run writes nothing; bumping
a task's ``version`` grades everything of that task again (the old grades stay, under their
own version). ``grader="lm-eval"`` grades with that separately named grader instead (lm-eval's
exact rules), recorded as ``<task>:lm-eval``; never the default. The library prints nothing:
progress goes to a callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from gvstore.errors import GvstoreError
from gvstore.records import Generation, Grade, Prompt, Provenance, record_key
from gvstore.store import Store, Writer
from gvstore.tasks.base import Task
from gvstore.tasks.registry import get_task, list_tasks, list_variants

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(task, done, total)`` while a task's generations are graded."""


@dataclass
class TaskGradeStats:
    """What ``grade_store`` did for one task."""

    task: str
    grader_version: str
    generations: int = 0
    already_graded: int = 0
    graded: int = 0
    no_prompt: int = 0
    strict_sum: float = 0.0
    flexible_sum: float = 0.0

    @property
    def strict_mean(self) -> float | None:
        """Mean strict utility of the generations graded in this run (None if none)."""
        return self.strict_sum / self.graded if self.graded else None

    @property
    def flexible_mean(self) -> float | None:
        return self.flexible_sum / self.graded if self.graded else None

    def as_dict(self) -> dict[str, object]:
        return {
            "task": self.task, "grader_version": self.grader_version,
            "generations": self.generations, "already_graded": self.already_graded,
            "graded": self.graded, "no_prompt": self.no_prompt,
            "strict_mean": self.strict_mean, "flexible_mean": self.flexible_mean,
        }


@dataclass
class GradeSummary:
    """Per task stats, records written, and generations whose task has no grader."""

    tasks: dict[str, TaskGradeStats] = field(default_factory=dict)
    written: int = 0
    unknown_tasks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "written": self.written, "seconds": round(self.seconds, 3),
            "tasks": [s.as_dict() for s in self.tasks.values()],
            "unknown_tasks": self.unknown_tasks,
        }


def grade_key(generation_id: str, task: Task) -> str:
    """The key of the ``Grade`` that ``task``'s current grader gives a generation."""
    return record_key(Grade(
        generation_id=generation_id, grader=task.grader_id, grader_version=task.version,
        strict=0.0, flexible=0.0,
    ))


def grade_store(
    store: Store,
    tasks: str | Iterable[str] | None = None,
    *,
    progress: ProgressCallback | None = None,
    flush_records: int = 4096,
    folder_prefix: str = "grade/",
    where: Callable[[Generation], bool] | None = None,
    grader: str | None = None,
) -> GradeSummary:
    """Grade every generation of ``tasks`` (all registered tasks if None) not yet graded;
    ``where`` narrows the generations further (e.g. to one model's round); ``grader`` names a
    separately named grader (``lm-eval``) to use instead of each task's own."""
    start = time.monotonic()
    if isinstance(tasks, str):
        tasks = [tasks]
    wanted = list(dict.fromkeys(tasks)) if tasks is not None else None
    if grader is not None and grader not in list_variants():
        raise GvstoreError(f"unknown grader {grader!r}; graders: {', '.join(list_variants())}")
    graders = {n: get_task(n, variant=grader) for n in (wanted if wanted is not None else [])}
    summary = GradeSummary()
    refs, by_task = _read(store, summary, None if wanted is None else graders, where)
    for name in by_task:
        if name not in graders:
            graders[name] = get_task(name, variant=grader)
    for name in (wanted if wanted is not None else sorted(by_task)):
        task = graders[name]
        gens = by_task.get(name, [])
        st = summary.tasks[name] = TaskGradeStats(name, task.version, generations=len(gens))
        keyed = {grade_key(g.id, task): g for g in gens}
        todo = store.missing(keyed, kind="grade")
        st.already_graded = len(keyed) - len(todo)
        if not todo:
            continue
        if progress is not None:
            progress(name, 0, len(todo))
        with store.writer(f"{folder_prefix}{name}", flush_records=flush_records) as w:
            _grade(w, task, st, [keyed[k] for k in todo], refs, progress)
            summary.written += w.count
    summary.seconds = time.monotonic() - start
    return summary


def _read(store: Store, summary: GradeSummary, wanted: Collection[str] | None,
          where: Callable[[Generation], bool] | None
          ) -> tuple[dict[str, str], dict[str, list[Generation]]]:
    """Prompt references by prompt id, and the generations to grade by task (one scan);
    generations of unregistered tasks are counted in ``summary.unknown_tasks``."""
    known = set(list_tasks())
    refs: dict[str, str] = {}
    by_task: dict[str, list[Generation]] = {}
    for rec in store.iter_records(kinds=("prompt", "generation")):
        if isinstance(rec, Prompt):
            refs[rec.id] = rec.reference
        elif isinstance(rec, Generation):
            if wanted is not None and rec.task not in wanted:
                continue
            if where is not None and not where(rec):
                continue
            if rec.task not in known:
                summary.unknown_tasks[rec.task] = summary.unknown_tasks.get(rec.task, 0) + 1
                continue
            by_task.setdefault(rec.task, []).append(rec)
    return refs, by_task


def _grade(w: Writer, task: Task, st: TaskGradeStats, gens: Sequence[Generation],
           refs: dict[str, str], progress: ProgressCallback | None) -> None:
    """Grade ``gens`` (those missing a grade) with ``task``'s grader, into ``w``."""
    for done, gen in enumerate(gens, 1):
        ref = refs.get(gen.prompt_id)
        if ref is None:
            st.no_prompt += 1
            continue
        t0 = time.monotonic()
        res = task.grade(gen.text, ref)
        w.add(Grade(
            generation_id=gen.id, grader=task.grader_id, grader_version=task.version,
            strict=res.strict, flexible=res.flexible, extracted=res.extracted,
            prov=Provenance(time=time.time(), duration_s=time.monotonic() - t0),
        ))
        st.graded += 1
        st.strict_sum += res.strict
        st.flexible_sum += res.flexible
        if progress is not None:
            progress(st.task, done, len(gens))


def check_tasks(names: Iterable[str]) -> list[str]:
    """The names, checked against the registry (``GvstoreError`` on an unknown one)."""
    out = list(names)
    for n in out:
        if n not in list_tasks():
            raise GvstoreError(f"unknown task {n!r}; known tasks: {', '.join(list_tasks())}")
    return out
