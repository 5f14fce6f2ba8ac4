"""``gvstore tasks list | show``: the registered tasks and their prompts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from gvstore.cli.console import emit, print_json
from gvstore.cli.options import DataPathOpt, JsonOpt
from gvstore.output import console, safe_text, styled, table
from gvstore.tasks.registry import get_task, list_tasks

tasks_app = typer.Typer(help="List tasks and show their prompts.", no_args_is_help=True)


@tasks_app.command("list")
def tasks_list_cmd(as_json: JsonOpt = False) -> None:
    """Every registered task with its splits, default shots and grader version."""
    rows = []
    for n in list_tasks():
        t = get_task(n)
        rows.append({"task": n, "splits": list(t.splits), "default_kshot": t.default_kshot,
                     "grader_version": t.version, "description": t.description})
    emit(rows, as_json, table("tasks", ["task", "splits", "kshot", "grader", "description"], [
        [r["task"], ",".join(r["splits"]), r["default_kshot"], r["grader_version"],  # type: ignore[arg-type]
         r["description"]] for r in rows
    ]))


@tasks_app.command("show")
def tasks_show_cmd(
    name: Annotated[str, typer.Argument(help="Task name (see `gvstore tasks list`).")],
    n: Annotated[int, typer.Option("--n", help="How many items to render.")] = 3,
    split: Annotated[str | None, typer.Option(help="Split (default: the task's first).")] = None,
    kshot: Annotated[int | None, typer.Option(help="Shots (default: the task's).")] = None,
    path: DataPathOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the first N items rendered into the exact prompt text, with references."""
    task = get_task(name, path)
    items = task.items(split or task.splits[0])[: max(n, 0)]
    recs = [task.prompt_record(it, kshot) for it in items]
    if as_json:
        print_json([{"item_id": r.item_id, "split": r.split, "kshot": r.kshot,
                     "template": r.template, "text": r.text, "reference": r.reference}
                    for r in recs])
        return
    for r in recs:
        console.rule(styled(f"{name} {r.split} {r.item_id} (kshot {r.kshot})", "rule.text"))
        console.print(styled(r.text, multiline=True))
        console.print(Text.assemble(("reference: ", "bold"), safe_text(r.reference)))
