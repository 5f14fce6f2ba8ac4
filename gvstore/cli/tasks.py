"""``gvstore data ...``, ``gvstore tasks ...`` and ``gvstore grade``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from gvstore.cli.options import JsonOpt, get_store
from gvstore.errors import GvstoreError
from gvstore.output import console, emit, err_console, note, print_json, safe_text, styled, table
from gvstore.progress import progress
from gvstore.steps.grade import check_tasks, grade_store
from gvstore.tasks import data
from gvstore.tasks.registry import get_task, list_tasks

data_app = typer.Typer(help="Find, check and download task data.", no_args_is_help=True)
tasks_app = typer.Typer(help="List tasks and show their prompts.", no_args_is_help=True)

PathOpt = Annotated[
    Path | None,
    typer.Option("--path", help="A data folder laid out like data/raw (or one data file)."),
]


@data_app.command("list")
def data_list_cmd(path: PathOpt = None, as_json: JsonOpt = False) -> None:
    """Every known data file: where it is found and whether its SHA-256 is right."""
    rows = data.status(path)
    payload = [
        {"dataset": r.name, "file": r.rel, "path": r.path, "ok": r.ok, "problem": r.problem}
        for r in rows
    ]
    emit(payload, as_json, table(
        "data files (looked for in: " + ", ".join(str(p) for p in data.search_roots(path)) + ")",
        ["dataset", "file", "found at", "digest"],
        [[r.name, r.rel, r.path or "-", "ok" if r.ok else (r.problem or "bad")] for r in rows],
    ))


@data_app.command("fetch")
def data_fetch_cmd(
    name: Annotated[str, typer.Argument(help="Dataset name (see `gvstore data list`).")],
    dest: Annotated[Path, typer.Option(help="Folder to place <name>/<file> in.")] = Path(
        "data/raw"
    ),
    mirror: Annotated[
        str | None,
        typer.Option(help="Base URL laid out like data/raw, instead of the official sources."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per download.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Download a dataset from its official source, check its digests, place it atomically."""
    def fetched(f: data.Fetched) -> None:
        if not as_json:
            note(f"{f.action}: {f.path}")

    got = data.fetch(name, dest, mirror=mirror, timeout=timeout, on_file=fetched)
    if as_json:
        print_json([{"file": f.rel, "path": f.path, "action": f.action, "url": f.url}
                    for f in got])


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
    path: PathOpt = None,
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


def grade_cmd(
    ctx: typer.Context,
    task: Annotated[
        list[str] | None,
        typer.Option("--task", help="Task to grade (repeatable; default: every task found)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
    grader: Annotated[str | None, typer.Option(
        "--grader", help="A separately named grader instead of the task's own: lm-eval "
        "(lm-evaluation-harness's exact rules; grades recorded as <task>:lm-eval).")] = None,
) -> None:
    """Grade every generation that has no grade from its task's current grader."""
    store = get_store(ctx)
    if not store.root.exists():
        raise GvstoreError(f"no store at {store.root} (set --store or GVSTORE_STORE)")
    names = check_tasks(task) if task else None
    with progress(quiet) as bar:
        jobs: dict[str, object] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in jobs:
                jobs[name] = bar.add_task(f"grade {name}", total=total, rate="")
            bar.update(jobs[name], completed=done)  # type: ignore[arg-type]

        summary = grade_store(store, names, progress=report, grader=grader)
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
