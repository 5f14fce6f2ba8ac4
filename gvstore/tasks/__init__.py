"""Tasks: prompt distributions with a utility u(x, y). See ``base.Task`` and ``registry``."""

from gvstore.tasks.base import Exemplar, GradeResult, Item, Task
from gvstore.tasks.registry import get_task, list_tasks

__all__ = ["Exemplar", "GradeResult", "Item", "Task", "get_task", "list_tasks"]
