"""Scaling: least-squares lines of relative gap against log10 FLOPs, and the model table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gvstore.analysis.scaling import (
    fit_line,
    load_gaps,
    load_models,
    scaling_fit,
    scaling_points,
)
from gvstore.errors import GvstoreError


def test_fit_by_hand() -> None:
    # mean x = 1, mean y = 2/3, S_xy = 1, S_xx = 2: slope 1/2, intercept 1/6;
    # residuals (-1/6, 1/3, -1/6): SS_res = 1/6, SS_tot = 2/3, R^2 = 3/4.
    got = fit_line([0, 1, 2], [0, 1, 1])
    assert got["slope"] == pytest.approx(0.5)
    assert got["intercept"] == pytest.approx(1 / 6)
    assert got["r2"] == pytest.approx(0.75)
    assert got["n"] == 3 and got["note"] is None


def test_fit_agrees_with_polyfit() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(20, 25, 12)
    y = 0.1 * x + rng.normal(0, 0.05, 12)
    got = fit_line(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert got["slope"] == pytest.approx(slope) and got["intercept"] == pytest.approx(intercept)
    assert got["r2"] == pytest.approx(float(np.corrcoef(x, y)[0, 1]) ** 2)
    exact = fit_line([1, 2, 3, 4], [3, 5, 7, 9])
    assert (exact["slope"], exact["intercept"], exact["r2"]) == pytest.approx((2, 1, 1))


def test_undefined_parts_are_null_with_a_note() -> None:
    two = fit_line([1, 2], [0.1, 0.3])
    assert two["slope"] == pytest.approx(0.2) and two["r2"] is None and "3" in two["note"]
    one = fit_line([1], [0.1])
    assert one["slope"] is None and one["note"]
    same_x = fit_line([2, 2, 2], [0.1, 0.2, 0.3])
    assert same_x["slope"] is None and "FLOPs" in same_x["note"]
    flat = fit_line([1, 2, 3], [0.2, 0.2, 0.2])
    assert flat["slope"] == 0.0 and flat["r2"] is None and "constant" in flat["note"]


def test_model_table_yaml_and_json(tmp_path: Path) -> None:
    yml = tmp_path / "models.yaml"
    yml.write_text(
        "models:\n"
        "  - {name: a-1b, family: a, flops: 1.0e+21}\n"
        "  - {name: a-7b, family: a, flops: 1e22}\n"  # YAML reads this as a string
        "  - {name: b-1b, family: b, flops: 100000000000000000000}\n"
    )
    frame = load_models(yml)
    assert frame.rows() == [("a-1b", "a", 1e21), ("a-7b", "a", 1e22), ("b-1b", "b", 1e20)]
    js = tmp_path / "models.json"
    js.write_text(json.dumps([{"name": "x", "family": "f", "flops": 5e23}]))
    assert load_models(js).rows() == [("x", "f", 5e23)]


@pytest.mark.parametrize(("text", "match"), [
    ("- {name: a, flops: 1.0e+21}\n", "family"),
    ("- {name: a, family: f, flops: -3}\n", "positive"),
    ("- {name: a, family: f, flops: 1}\n- {name: a, family: g, flops: 2}\n", "twice"),
    ("- {name: a, family: f, flops: lots}\n", r"\$\[0\]\.flops"),
    ("models: [\n", "not valid"),
])
def test_model_table_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(GvstoreError, match=match):
        load_models(path)
    with pytest.raises(GvstoreError, match="cannot read"):
        load_models(tmp_path / "absent.yaml")


def test_points_and_fits_per_family(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps([
        {"name": "a1", "family": "a", "flops": 1e20}, {"name": "a2", "family": "a", "flops": 1e21},
        {"name": "a3", "family": "a", "flops": 1e22}, {"name": "b1", "family": "b", "flops": 1e21},
        {"name": "b2", "family": "b", "flops": 1e23}, {"name": "b3", "family": "b", "flops": 1e24},
    ]))
    gaps_path = tmp_path / "gaps.json"
    gaps_path.write_text(json.dumps([
        {"model": "a1", "relative_gap": 0.0}, {"model": "a2", "relative_gap": 0.1},
        {"model": "a3", "relative_gap": 0.2}, {"model": "b1", "relative_gap": 0.05},
        {"model": "b2", "relative_gap": 0.25},
    ]))
    points = scaling_points(load_models(path), load_gaps(gaps_path).get)
    assert points["log10_flops"].to_list() == pytest.approx([20, 21, 22, 21, 23, 24])
    assert points["relative_gap"].null_count() == 1
    a, b = scaling_fit(points)
    assert (a["family"], a["models"], a["missing"], a["n"]) == ("a", 3, 0, 3)
    assert (a["slope"], a["intercept"], a["r2"]) == pytest.approx((0.1, -2.0, 1.0))
    assert (b["models"], b["missing"], b["n"]) == (3, 1, 2)
    assert b["slope"] == pytest.approx(0.1) and b["r2"] is None


def test_load_models_reads_the_params_model_table(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("models:\n  a: {source: hub, hub_id: x/a, family: f, flops: 1.0e+20}\n"
                    "  b: {family: g, flops: 3.0e+21}\n")
    got = load_models(path)
    assert got.rows() == [("a", "f", 1e20), ("b", "g", 3e21)]
