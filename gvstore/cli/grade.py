"""``gvstore grade``: grade the generations that have no grade yet."""

from __future__ import annotations

from typing import Annotated

import typer

from gvstore.cli.console import note, print_json
from gvstore.cli.options import JsonOpt, QuietOpt, StoreOpt, get_store
from gvstore.output import err_console, table
from gvstore.progress import progress
from gvstore.steps.grade import check_tasks, grade_store


def grade_cmd(
    ctx: typer.Context,
    task: Annotated[
        list[str] | None,
        typer.Option("--task", help="Task to grade (repeatable; default: every task found)."),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    grader: Annotated[str | None, typer.Option(
        "--grader", help="A separately named grader instead of the task's own: lm-eval "
        "(lm-evaluation-harness's exact rules; grades recorded as <task>:lm-eval).")] = None,
    store: StoreOpt = None,
) -> None:
    """Grade every generation that has no grade from its task's current grader."""
    st = get_store(ctx, store)
    names = check_tasks(task) if task else None
    with progress(quiet) as bar:
        jobs: dict[str, object] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in jobs:
                jobs[name] = bar.add_task(f"grade {name}", total=total, rate="")
            bar.update(jobs[name], completed=done)  # type: ignore[arg-type]

        summary = grade_store(st, names, progress=report, grader=grader)
    data_ = summary.as_dict()
    if as_json:
        print_json(data_)
        return
    rows = [[s.task, s.grader_version, s.generations, s.already_graded, s.graded, s.no_prompt,
             s.strict_mean, s.flexible_mean] for s in summary.tasks.values()]
    err_console.print(table(
        f"grade: wrote {summary.written} records in {summary.seconds:.1f} s",
        ["task", "grader", "generations", "already graded", "graded now", "no prompt",
         "strict (new)", "flexible (new)"], rows,
    ))
    for name, count in sorted(summary.unknown_tasks.items()):
        note(f"note: {count} generations of task {name!r}, which has no grader")
