"""Tasks by name. Modules are imported on first use, so importing gvstore stays cheap."""

from __future__ import annotations

import importlib
from pathlib import Path

from gvstore.errors import GvstoreError
from gvstore.tasks.base import Task

_TASKS: dict[str, str] = {
    "arith": "gvstore.tasks.arith:Arith",
    "gsm8k": "gvstore.tasks.gsm8k:GSM8K",
    "math": "gvstore.tasks.math_task:MathTask",
    "nq_open": "gvstore.tasks.nq_open:NQOpen",
    "sudoku": "gvstore.tasks.sudoku:Sudoku",
}


# separately named graders of a task: (task, variant) -> Task subclass with that ``variant``
VARIANTS: dict[tuple[str, str], str] = {
    ("gsm8k", "lm-eval"): "gvstore.tasks.gsm8k:GSM8KLmEval",
    ("math", "lm-eval"): "gvstore.tasks.math_task:MathLmEval",
}


def list_variants() -> list[str]:
    """The names of the separately named graders (``lm-eval``), sorted."""
    return sorted({v for _, v in VARIANTS})


def list_tasks() -> list[str]:
    """The names of every registered task, sorted."""
    return sorted(_TASKS)


def task_class(name: str) -> type[Task]:
    target = _TASKS.get(name)
    if target is None:
        raise GvstoreError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    return _load(target)


def _load(target: str) -> type[Task]:
    module, _, attr = target.partition(":")
    cls: type[Task] = getattr(importlib.import_module(module), attr)
    return cls


def get_task(name: str, data_path: Path | str | None = None, variant: str | None = None,
             ) -> Task:
    """A task instance by name (``GvstoreError`` naming the known tasks if there is none);
    with ``variant``, the task graded by that separately named grader."""
    if not variant:
        return task_class(name)(data_path)
    target = VARIANTS.get((name, variant))
    if target is None:
        task_class(name)  # an unknown task is named as such
        having = sorted(t for t, v in VARIANTS if v == variant)
        if not having:
            raise GvstoreError(f"unknown grader {variant!r}; graders: {', '.join(list_variants())}")
        raise GvstoreError(f"task {name!r} has no grader {variant!r}; tasks that have it: "
                           f"{', '.join(having)}")
    return _load(target)(data_path)
