"""The report's extra sections: verifier quality and n-scaling (placeholders until the
analyses that compute them exist)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gvstore.analysis.frames import Dataset
from gvstore.params import Params

if TYPE_CHECKING:
    from rich.table import Table


def sections(ds: Dataset, params: Params, files: list[Path], out: Path) -> dict[str, Any]:
    """The extra sections of ``report.json`` (files they write are appended to ``files``)."""
    return {}


def views(metrics: dict[str, Any]) -> list[Table | str]:
    """What to print of the extra sections."""
    return []


def headline_rows(metrics: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """The extra sections' headline rows (path parts under ``metrics/``, scalars)."""
    yield from ()
