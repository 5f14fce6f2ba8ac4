"""Relative gap against pretraining compute: a least-squares line per model family (figure 1).

For each family, with x = log10(pretraining FLOPs) and y = relative gap of each model,

    slope = S_xy / S_xx,   intercept = mean(y) - slope * mean(x),   R^2 = 1 - SS_res / SS_tot

(closed form; S_xy = sum (x - mean x)(y - mean y), S_xx likewise, SS_res the sum of squared
residuals, SS_tot = S_yy). A line needs two models with different FLOPs; R^2 needs three
points (through two points it is 1 by construction) and a relative gap that is not constant.
Where a number is undefined it is null and ``note`` says why.

The model table comes from a loaded ``Params`` (``models_frame(params.models.values())``) or
from a YAML or JSON file: a list of entries ``{name, family, flops}`` (or a mapping with such a
list under ``models``, or params.yaml's own ``models`` table), e.g.

    models:
      - {name: Qwen2.5-7B, family: qwen2.5, flops: 2.9e+23}
      - {name: Qwen2.5-14B, family: qwen2.5, flops: "5.9e23"}

``flops`` is the pretraining compute in FLOPs, a number or a numeric string (YAML 1.1 reads
``5.9e23`` without a sign after ``e`` as a string; both forms are accepted). The relative gaps
come from a function the caller supplies (model name -> relative gap or None), or from a JSON
file: a list of ``{model, relative_gap}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from gvstore.errors import GvstoreError
from gvstore.io import read_yaml
from gvstore.models import ModelSpec, model_table

ROW_FIELDS = ("name", "family", "flops")
"""What a row of a list-form model table gives (other keys are ignored)."""


class GapEntry(msgspec.Struct, frozen=True):
    """One model's relative gap, as a ``--gaps`` file lists it."""

    model: str
    relative_gap: float | None


def _read(path: Path) -> Any:
    """A JSON file (``.json``) or a YAML file, read strictly (``gvstore.io.read_yaml``)."""
    if path.suffix.lower() != ".json":
        return read_yaml(path, "model table")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GvstoreError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise GvstoreError(f"{path} is not valid json: {exc}") from exc


def _rows(data: Any) -> list[ModelSpec]:
    """A list of ``{name, family, flops}`` as model-table rows (``flops`` may be a numeric
    string); an error names the row (``at `$[i]```)."""
    try:
        rows = msgspec.convert(data, list[dict[str, Any]])
    except msgspec.ValidationError as exc:
        raise GvstoreError(str(exc)) from exc
    out: list[ModelSpec] = []
    for i, row in enumerate(rows):
        for key in ROW_FIELDS:
            if key not in row:
                raise GvstoreError(f"Object missing required field `{key}` - at `$[{i}]`")
        try:
            out.append(msgspec.convert({k: row[k] for k in ROW_FIELDS}, ModelSpec,
                                       strict=False))
        except msgspec.ValidationError as exc:
            raise GvstoreError(str(exc).replace("`$", f"`$[{i}]", 1)) from exc
    return out


def load_models(path: Path) -> pl.DataFrame:
    """The model table of ``path`` as a frame ``model, family, flops`` (see module doc)."""
    data = _read(path)
    if isinstance(data, Mapping) and "models" in data:
        data = data["models"]
    try:  # a mapping is params.yaml's model table: name -> row
        specs = (list(model_table(data, strict=False).values()) if isinstance(data, Mapping)
                 else _rows(data))
        return models_frame(specs)
    except GvstoreError as exc:
        raise GvstoreError(f"{path}: {exc}") from exc


def models_frame(specs: Iterable[ModelSpec]) -> pl.DataFrame:
    """Model-table rows (a loaded ``Params.models.values()``, or a file's) as a frame
    ``model, family, flops``; every model needs a positive, finite ``flops``."""
    entries = list(specs)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise GvstoreError(f"model(s) listed twice: {', '.join(dup)}")
    bad = [e.name for e in entries if e.flops is None or not (math.isfinite(e.flops)
                                                               and e.flops > 0)]
    if bad:
        raise GvstoreError(f"flops must be a positive number (model {bad[0]})")
    return pl.DataFrame(
        {"model": names, "family": [e.family for e in entries],
         "flops": [e.flops for e in entries]},
        schema={"model": pl.String, "family": pl.String, "flops": pl.Float64},
    )


def load_gaps(path: Path) -> dict[str, float | None]:
    """A ``--gaps`` file: a JSON (or YAML) list of ``{model, relative_gap}``, as a mapping."""
    data = _read(path)
    try:
        entries = msgspec.convert(data, list[GapEntry], strict=False)
    except msgspec.ValidationError as exc:
        raise GvstoreError(f"{path}: {exc}") from exc
    return {e.model: e.relative_gap for e in entries}


def scaling_points(
    models: pl.DataFrame, relative_gap: Callable[[str], float | None]
) -> pl.DataFrame:
    """``models`` (``model, family, flops``) with ``log10_flops`` and ``relative_gap`` added.

    ``relative_gap`` maps a model name to its relative gap, or None where there is none (that
    model stays in the frame with a null gap and is left out of the fits).
    """
    gaps = [relative_gap(str(m)) for m in models["model"]]
    return models.with_columns(
        log10_flops=pl.col("flops").log10(),
        relative_gap=pl.Series(gaps, dtype=pl.Float64),
    )


def fit_line(x: Any, y: Any) -> dict[str, Any]:
    """Least-squares line y = slope x + intercept: ``n, slope, intercept, r2, note``."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    n = int(xa.size)
    out: dict[str, Any] = {"n": n, "slope": None, "intercept": None, "r2": None, "note": None}
    if n < 2:
        out["note"] = "a line needs at least 2 models"
        return out
    # Constancy is tested on the values: a mean that rounds leaves tiny nonzero deviations.
    if xa.min() == xa.max():
        out["note"] = "every model has the same FLOPs: no slope"
        return out
    xc = xa - xa.mean()
    yc = ya - ya.mean()
    flat = ya.min() == ya.max()
    slope = 0.0 if flat else float(xc @ yc) / float(xc @ xc)
    intercept = float(ya[0]) if flat else float(ya.mean()) - slope * float(xa.mean())
    out["slope"], out["intercept"] = slope, intercept
    syy = float(yc @ yc)
    if n < 3:
        out["note"] = "R^2 needs at least 3 models (a line through 2 fits exactly)"
    elif flat:
        out["note"] = "the relative gap is constant: R^2 undefined"
    else:
        resid = ya - (slope * xa + intercept)
        out["r2"] = 1.0 - float(resid @ resid) / syy
    return out


def scaling_fit(points: pl.DataFrame) -> list[dict[str, Any]]:
    """One fit per family of ``points`` (``scaling_points``'s frame), in family order.

    Each: ``family``, ``models`` (in the table), ``missing`` (with no relative gap), and
    ``fit_line``'s ``n, slope, intercept, r2, note`` over log10 FLOPs.
    """
    out: list[dict[str, Any]] = []
    for family in sorted(points["family"].unique().to_list()):
        part = points.filter(pl.col("family") == family)
        have = part.drop_nulls("relative_gap")
        fit = fit_line(have["log10_flops"].to_numpy(), have["relative_gap"].to_numpy())
        out.append({"family": family, "models": part.height,
                    "missing": part.height - have.height, **fit})
    return out
