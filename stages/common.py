"""Shared by the stage scripts: load and validate params.yaml, report errors in one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from gvstore.errors import GvstoreError
from gvstore.params import Params, load, validate


def load_params(path: Path, check_data: bool = False) -> Params:
    params = load(path)
    validate(params, check_data=check_data)
    return params


def run(body: Callable[[], int]) -> int:
    """Run a stage body; a GvstoreError becomes one line on stderr and exit status 1."""
    try:
        return body()
    except GvstoreError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
