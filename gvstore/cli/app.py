"""The ``gvstore`` command line. Subcommand groups live in the other
modules of ``gvstore.cli``.

Errors are turned into text here and nowhere else: a ``GvstoreError`` (bad input, missing file,
damaged store) becomes one line on stderr and exit status 1 (a bad filter spec keeps its
caret line under the fault); any other exception becomes one line naming it and exit status
70. With ``--debug`` the traceback is shown instead. Commands raise; they never print errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gvstore.backends.threads import set_wait_policy
from gvstore.errors import GvstoreError
from gvstore.store import ENV_VAR, default_root


class _Group(TyperGroup):
    """Turns errors into one-line messages unless ``--debug`` was given."""

    def invoke(self, ctx: Any) -> Any:  # a typer (vendored click) Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # exits, aborts and usage errors: typer reports them itself
        except GvstoreError as exc:
            if _debug(ctx):
                raise
            _error(exc)
            ctx.exit(1)
        except KeyboardInterrupt:
            _one_line("interrupted", "stopped by the user")
            ctx.exit(130)
        except Exception as exc:  # a bug, not bad input: still one line unless --debug
            if _debug(ctx):
                raise
            _one_line("internal error",
                      f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
            ctx.exit(70)


def _error(exc: GvstoreError) -> None:
    from gvstore.analysis.specs import SpecError  # light: no polars or numpy

    if isinstance(exc, SpecError):
        from gvstore.cli.console import error_block

        error_block(exc)  # unwrapped, so the caret stays under the fault
    else:
        _one_line("error", str(exc))


def _one_line(label: str, message: str) -> None:
    # one line, whatever the message held: whitespace runs become one space, control
    # characters (ESC, CR, ...) are shown escaped, markup is printed as text
    from gvstore.cli.console import error_line

    error_line(label, message)


def _debug(ctx: typer.Context) -> bool:
    obj = ctx.find_root().obj
    return bool(isinstance(obj, dict) and obj.get("debug"))


# Before any command imports torch (prepare-model, finetune, generate, verify): OpenMP reads
# its wait policy once, at torch's import (see gvstore/backends/threads.py).
set_wait_policy()

app = typer.Typer(
    cls=_Group,
    help="gvstore: measure and exploit the generation-verification gap of language models, "
    "from content-addressed records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", envvar=ENV_VAR, help="Store root folder (default: data/store).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    skip_damaged: Annotated[bool, typer.Option(
        "--skip-damaged", help="Read past damaged or missing segments (each one is reported "
        "on stderr) instead of stopping with an error.")] = False,
) -> None:
    ctx.obj = {"store": store if store is not None else default_root(), "debug": debug,
               "skip_damaged": skip_damaged}


def _register() -> None:
    # Every command module imports only light modules at the top (no polars, numpy, torch or
    # matplotlib: tests/test_cli_app.py), so `gvstore --help` stays fast; the heavy imports
    # happen inside the command that needs them.
    from gvstore.cli.analysis import register as register_analysis
    from gvstore.cli.data import data_app
    from gvstore.cli.ensembles import ensembles_cmd
    from gvstore.cli.finetune import finetune_cmd
    from gvstore.cli.generate import generate_cmd
    from gvstore.cli.grade import grade_cmd
    from gvstore.cli.metrics import corr_cmd, passk_cmd, variance_cmd
    from gvstore.cli.model import prepare_model_cmd
    from gvstore.cli.params import params_app
    from gvstore.cli.report import report_cmd
    from gvstore.cli.rounds import rounds_cmd
    from gvstore.cli.scaling import scaling_cmd
    from gvstore.cli.store import store_app
    from gvstore.cli.tasks import tasks_app
    from gvstore.cli.verify import verify_cmd

    app.add_typer(store_app, name="store")
    app.add_typer(params_app, name="params")
    app.command("report")(report_cmd)
    app.add_typer(data_app, name="data")
    app.add_typer(tasks_app, name="tasks")
    app.command("prepare-model")(prepare_model_cmd)
    app.command("generate")(generate_cmd)
    app.command("grade")(grade_cmd)
    app.command("verify")(verify_cmd)
    app.command("finetune")(finetune_cmd)
    app.command("rounds")(rounds_cmd)
    register_analysis(app)  # gap, sweep, cross, weights, export sft|pairs
    app.command("passk")(passk_cmd)
    app.command("corr")(corr_cmd)
    app.command("variance")(variance_cmd)
    app.command("scaling")(scaling_cmd)
    from gvstore.cli.selection import register as register_selection

    register_selection(app)  # select, nscale
    app.command("ensembles")(ensembles_cmd)  # learned ensembles on held-out folds
    from gvstore.cli.compare import register as register_compare

    register_compare(app)  # transfer, compare
    from gvstore.cli.quality import verifier_cmd

    app.command("verifier")(verifier_cmd)  # verifier quality: ROC/AUC, calibration, self-bias


_register()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, return its exit status."""
    try:
        app(args=argv, prog_name="gvstore", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
