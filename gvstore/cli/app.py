"""The ``gvstore`` command line. Subcommand groups live in the other
modules of ``gvstore.cli``.

Errors are turned into text here and nowhere else: a ``GvstoreError`` (bad input, missing file,
damaged store) becomes one line on stderr and exit status 1 (a bad filter spec keeps its
caret line under the fault); any other exception becomes one line naming it and exit status
70. With ``--debug`` the traceback is shown instead. Commands raise; they never print errors.
"""

from __future__ import annotations

import functools
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


# Every command: its name -> (module of gvstore.cli, attribute, how it is added): "command"
# (a function), "typer" (a sub-app) or "register" (a function adding several commands).
# Every command module imports only light modules at the top (no polars, numpy, torch or
# matplotlib: tests/test_cli_app.py), so `gvstore --help` stays fast; the heavy imports
# happen inside the command that needs them. ``main`` adds only the module of the command
# it runs, so a warm `gvstore gap` imports no other command's module.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "store": ("store", "store_app", "typer"),
    "params": ("params", "params_app", "typer"),
    "report": ("report", "report_cmd", "command"),
    "data": ("data", "data_app", "typer"),
    "tasks": ("tasks", "tasks_app", "typer"),
    "prepare-model": ("model", "prepare_model_cmd", "command"),
    "generate": ("generate", "generate_cmd", "command"),
    "grade": ("grade", "grade_cmd", "command"),
    "verify": ("verify", "verify_cmd", "command"),
    "finetune": ("finetune", "finetune_cmd", "command"),
    "rounds": ("rounds", "rounds_cmd", "command"),
    **{n: ("analysis", "register", "register")
       for n in ("gap", "sweep", "cross", "weights", "export")},
    "passk": ("metrics", "passk_cmd", "command"),
    "corr": ("metrics", "corr_cmd", "command"),
    "variance": ("metrics", "variance_cmd", "command"),
    "scaling": ("scaling", "scaling_cmd", "command"),
    "ensembles": ("ensembles", "ensembles_cmd", "command"),  # learned ensembles, held-out
    **{n: ("selection", "register", "register") for n in ("select", "nscale")},
    **{n: ("compare", "register", "register") for n in ("transfer", "compare")},
    "verifier": ("quality", "verifier_cmd", "command"),  # ROC/AUC, calibration, self-bias
    "import": ("importing", "import_app", "typer"),  # samples made elsewhere
    "view": ("view", "view_cmd", "command"),  # a static HTML bundle of the samples
}
_ROOT_VALUE_OPTIONS = ("--store",)  # root options that take a value


def build_app(names: list[str] | None = None) -> typer.Typer:
    """The app with the commands ``names`` (all of them, in ``COMMANDS`` order, if None)."""
    import importlib

    app = typer.Typer(
        cls=_Group,
        help="gvstore: measure and exploit the generation-verification gap of language "
        "models, from content-addressed records.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(_root)
    done: set[tuple[str, str]] = set()
    for name in names if names is not None else list(COMMANDS):
        module, attr, how = COMMANDS[name]
        if (module, attr) in done:
            continue
        done.add((module, attr))
        obj = getattr(importlib.import_module(f"gvstore.cli.{module}"), attr)
        if how == "typer":
            app.add_typer(obj, name=name)
        elif how == "command":
            app.command(name)(obj)
        else:
            obj(app)
    return app


def command_name(argv: list[str]) -> str | None:
    """The command an argument list runs (its first word past the root options), if any."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not arg.startswith("-"):
            return arg
        i += 2 if arg in _ROOT_VALUE_OPTIONS else 1
    return None


@functools.cache
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> Any:
    # ``app``: the app with every command (built on first use; tests and typer's tools use it)
    if name == "app":
        return _full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, return its exit status."""
    args = sys.argv[1:] if argv is None else argv
    name = command_name(args)
    app = build_app([name] if name in COMMANDS else None)
    try:
        app(args=args, prog_name="gvstore", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
