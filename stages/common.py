"""Shared by the stage scripts: load and validate params.yaml, open the store, report errors in
one line.

Every stage writes into the store its params name (``base.store``), the folder dvc.yaml's outs
are declared under: ``stage_store`` is the one place a stage gets its store from.
``$GVSTORE_STORE`` is not read here (it would send a stage's records away from its outs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gvstore.backends.threads import set_wait_policy
from gvstore.errors import GvstoreError
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
        from gvstore.output import error_line

        error_line("error", exc)  # one line, control characters escaped
        return 1
