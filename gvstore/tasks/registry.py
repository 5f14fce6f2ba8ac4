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


def list_tasks() -> list[str]:
    """The names of every registered task, sorted."""
    return sorted(_TASKS)


def task_class(name: str) -> type[Task]:
    target = _TASKS.get(name)
    if target is None:
        raise GvstoreError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    module, _, attr = target.partition(":")
    cls: type[Task] = getattr(importlib.import_module(module), attr)
    return cls


def get_task(name: str, data_path: Path | str | None = None) -> Task:
    """A task instance by name (``GvstoreError`` naming the known tasks if there is none)."""
    return task_class(name)(data_path)
