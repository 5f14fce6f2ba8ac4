"""``gvstore view OUT_DIR``: a static HTML bundle to look at the samples (docs/view.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gvstore.analysis import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from gvstore.cli.analysis import LevelOpt, ResamplesOpt, SeedOpt
from gvstore.cli.console import emit
from gvstore.cli.options import (
    GeneratorOpt,
    GraderOpt,
    JsonOpt,
    RoundOpt,
    StoreOpt,
    TaskOpt,
    VerifierOpt,
    get_store,
    make_filters,
)


def view_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(
        help="Folder to write the bundle into (new, empty, or an earlier bundle).")],
    spec: Annotated[list[str] | None, typer.Option(
        "--spec", help="Filter spec of the gap table (repeatable); the first one decides "
        "which samples are shown as kept (default: mc:quantile=0.8).",
        show_default=False)] = None,
    task: TaskOpt = None, generator: GeneratorOpt = None, verifier: VerifierOpt = None,
    rnd: RoundOpt = None, grader: GraderOpt = None,
    resamples: ResamplesOpt = DEFAULT_RESAMPLES, seed: SeedOpt = 0,
    level: LevelOpt = DEFAULT_LEVEL,
    plots: Annotated[bool, typer.Option(
        "--plots/--no-plots", help="Draw the overview plots (sweeps, pass@k, verifier "
        "quality) into the bundle.")] = True,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Then serve the bundle over HTTP on this machine until Ctrl-C "
        "(not needed to open it: index.html opens from disk).")] = False,
    port: Annotated[int, typer.Option(
        "--port", help="Port of --serve (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option(
        "--host", help="Address --serve binds to (the default is this machine only).")
    ] = "127.0.0.1",
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Write a self-contained HTML viewer (open OUT/index.html from disk, no server): the gap
    table, per group the prompts sortable by gap, accuracy and verifier/ground-truth
    disagreement, and per prompt every sample with its grades, scores and whether the spec
    keeps it."""
    from gvstore.analysis.specs import parse
    from gvstore.output import table
    from gvstore.view.bundle import write_bundle
    from gvstore.view.data import DEFAULT_SPECS, ViewData

    parsed = [parse(s) for s in (spec or DEFAULT_SPECS)]
    view = ViewData(get_store(ctx, store), parsed,
                    filters=make_filters(task, generator, verifier, rnd), grader=grader,
                    resamples=resamples, seed=seed, level=level)
    rep = write_bundle(view, out, plots=plots, resamples=resamples, seed=seed, level=level)
    t = table("viewer written", ["folder", "spec", "groups", "prompts", "samples", "plots"],
              [[rep.out, rep.spec, rep.groups, rep.prompts, rep.samples, rep.plots]])
    emit(rep.to_dict(), as_json, t, f"open {Path(rep.out) / 'index.html'} in a browser")
    if serve:
        _serve(Path(rep.out), host, port)


def _serve(folder: Path, host: str, port: int) -> None:
    from gvstore.cli.console import note
    from gvstore.view.serve import server, url

    srv = server(folder, host, port)
    note(f"serving {folder} at {url(srv)} (Ctrl-C stops)")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        note("stopped serving")
    finally:
        srv.server_close()
