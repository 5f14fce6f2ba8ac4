"""Shared by the stage scripts: load and validate params.yaml, open the store, print notes and
results, report errors in one line. (The stages print here; the commands print in
``gvstore/cli/console.py``; both print what ``gvstore.output`` builds.)

Every stage writes into the store its params name (``base.store``), the folder dvc.yaml's outs
are declared under: ``stage_store`` is the one place a stage gets its store from.
``$GVSTORE_STORE`` is not read here (it would send a stage's records away from its outs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gvstore.backends.threads import set_wait_policy
from gvstore.errors import GvstoreError
from gvstore.output import console, err_console, error_text, line_text
from gvstore.params import Params, load, validate
from gvstore.store import Store

set_wait_policy()  # OpenMP's passive wait policy, before any stage imports torch


def load_params(path: Path, check_data: bool = False) -> Params:
    params = load(path)
    validate(params, check_data=check_data)
    return params


def stage_store(params: Params | None, store: Path | None = None) -> Store:
    """The store a stage reads and writes: ``store`` (a ``--store`` given by hand) if set, else
    ``base.store`` of ``params``."""
    if store is not None:
        return Store(store)
    if params is None:
        raise GvstoreError("no store: give --store or --params with base.store")
    return Store(params.base.store)


def run(body: Callable[[], int]) -> int:
    """Run a stage body; a GvstoreError becomes one line on stderr and exit status 1."""
    try:
        return body()
    except GvstoreError as exc:
        err_console.print(error_text("error", exc), soft_wrap=True)  # one line, made safe
        return 1


def note(message: Any) -> None:
    """One line of text on stderr, made safe, never wrapped."""
    err_console.print(line_text(message), soft_wrap=True)


def show(*renderables: Any) -> None:
    """A stage's result (tables, text built by ``gvstore.output``) on stdout."""
    for r in renderables:
        console.print(r)
