"""``passk``, ``corr``, ``variance`` and ``scaling`` through the real ``gvstore`` app, parsing
``--json``; errors as users see them: one line on stderr, exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import StoreBuilder
from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.cli.metrics import parse_ks
from gvstore.errors import GvstoreError
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def _run(store: Path, *args: str) -> dict:
    res = runner.invoke(app, ["--store", str(store), *args, "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout)


def _error(store: Path, *args: str) -> str:
    """The one line a user sees on stderr when the command fails (exit status 1)."""
    res = runner.invoke(app, ["--store", str(store), *args])
    assert res.exit_code == 1, (res.output, res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    return lines[0]


def _hand_store(root: Path) -> Path:
    """Two prompts of task t by generator g. Prompt a: 3 samples, 1 correct (strict; the
    second is correct under flexible); prompt b: 2 samples, both wrong. Verifier v scores
    every sample with mc, and twice with cot_binary."""
    utils = {"a": [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0)], "b": [(0.0, 0.0), (0.0, 0.0)]}
    mc = {"a": [0.9, 0.6, 0.2], "b": [0.4, 0.1]}
    binary: dict[str, list[tuple[float | None, ...]]] = {
        "a": [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0)], "b": [(1.0, None), (0.0, 0.0)]}
    b = StoreBuilder(root)
    for item, us in utils.items():
        p = b.prompt(item)
        for i, (strict, flexible) in enumerate(us):
            g = b.generation(p, i, f"{item}{i}")
            b.grade(g, strict, flexible)
            b.verification(g, "mc", mc[item][i])
            for m, s in enumerate(binary[item][i]):
                b.verification(g, "cot_binary", s, repeat=m, status="ok")
    b.write("test")
    return root


def test_parse_ks() -> None:
    assert parse_ks("1,2,4,8") == [1, 2, 4, 8]
    assert parse_ks("1-4") == [1, 2, 3, 4] == parse_ks("1..4")
    assert parse_ks("8, 1-2, 2") == [1, 2, 8]
    for bad in ("", "0", "4-1", "x", "1.5"):
        with pytest.raises(GvstoreError):
            parse_ks(bad)


def test_passk_json_by_hand(tmp_path: Path) -> None:
    store = _hand_store(tmp_path / "s")
    data = _run(store, "passk", "--k", "1-3")
    assert data["ks"] == [1, 2, 3]
    rows = {r["k"]: r for r in data["rows"]}
    assert rows[1]["pass_at_k"] == pytest.approx((1 / 3 + 0) / 2)
    assert rows[2]["pass_at_k"] == pytest.approx((1 - 1 / 3 + 0) / 2)  # a: 1 - C(2,2)/C(3,2)
    assert rows[3]["pass_at_k"] == pytest.approx(1.0)  # b has 2 samples: excluded
    assert (rows[3]["prompts"], rows[3]["excluded"]) == (1, 1)
    assert {(r["task"], r["model"], r["round"]) for r in data["rows"]} == {("t", "g", 0)}
    flex = _run(store, "passk", "--k", "1", "--utility", "flexible")
    assert flex["rows"][0]["pass_at_k"] == pytest.approx((2 / 3 + 0) / 2)
    default = _run(store, "passk")
    assert default["ks"] == [1, 2]  # powers of 2 up to the 3 samples of prompt a


def test_passk_plot_table_and_errors(tmp_path: Path) -> None:
    store = _hand_store(tmp_path / "s")
    plot = tmp_path / "out" / "passk.png"
    data = _run(store, "passk", "--plot", str(plot))
    assert data["plot"] == str(plot) and plot.read_bytes().startswith(PNG)
    res = runner.invoke(app, ["--store", str(store), "passk", "--k", "1,2"])
    assert res.exit_code == 0 and "pass@k" in res.stdout
    assert "no graded" in _error(store, "passk", "--task", "other")
    assert "no store" in _error(tmp_path / "absent", "passk")


def test_corr_json_by_hand(tmp_path: Path) -> None:
    store = _hand_store(tmp_path / "s")
    data = _run(store, "corr")
    (pair,) = data["pairs"]
    assert pair["a"] == {"verifier": "v", "method": "cot_binary"}
    assert pair["b"] == {"verifier": "v", "method": "mc"}
    # cot_binary means (null left out): 1, 0.5, 0, 1, 0 against mc 0.9, 0.6, 0.2, 0.4, 0.1.
    x = [1.0, 0.5, 0.0, 1.0, 0.0]
    y = [0.9, 0.6, 0.2, 0.4, 0.1]
    xm, ym = sum(x) / 5, sum(y) / 5
    sxy = sum((a - xm) * (b - ym) for a, b in zip(x, y, strict=True))
    sxx = sum((a - xm) ** 2 for a in x)
    syy = sum((b - ym) ** 2 for b in y)
    assert pair["n"] == 5 and pair["dropped"] == 0
    assert pair["pearson"] == pytest.approx(sxy / (sxx * syy) ** 0.5)
    # ranks of x (ties averaged): 4.5, 3, 1.5, 4.5, 1.5; of y: 5, 4, 2, 3, 1
    rx, ry = [4.5, 3, 1.5, 4.5, 1.5], [5, 4, 2, 3, 1]
    d2 = sum((a - b) ** 2 for a, b in zip(rx, ry, strict=True))
    # with ties, rho is Pearson of the ranks (not 1 - 6 sum d^2 / ...): check both differ
    rm = 3.0
    num = sum((a - rm) * (b - rm) for a, b in zip(rx, ry, strict=True))
    den = (sum((a - rm) ** 2 for a in rx) * sum((b - rm) ** 2 for b in ry)) ** 0.5
    assert pair["spearman"] == pytest.approx(num / den)
    assert pair["spearman"] != pytest.approx(1 - 6 * d2 / (5 * 24))


def test_corr_plots_and_one_pair_error(tmp_path: Path) -> None:
    store = _hand_store(tmp_path / "s")
    plot, heat = tmp_path / "scatter.png", tmp_path / "heat.png"
    data = _run(store, "corr", "--plot", str(plot), "--heatmap", str(heat))
    assert plot.read_bytes().startswith(PNG) and heat.read_bytes().startswith(PNG)
    assert data["heatmap"] == str(heat)
    assert "two (verifier, method)" in _error(store, "corr", "--method", "mc")


def test_variance_json_by_hand(tmp_path: Path) -> None:
    store = _hand_store(tmp_path / "s")
    data = _run(store, "variance", "--bins", "5")
    groups = {g["method"]: g for g in data["groups"]}
    # mc was asked once per generation: every generation is "single", no variance.
    assert (groups["mc"]["generations"], groups["mc"]["single"]) == (0, 5)
    assert groups["mc"]["mean_variance"] is None
    g = groups["cot_binary"]
    # verdict pairs: (1,1) (1,0) (0,0) (1,-) (0,0): variances 0, 1/4, 0, -, 0
    assert (g["generations"], g["single"], g["failures"]) == (4, 1, 1)
    assert g["mean_variance"] == pytest.approx(0.25 / 4)
    assert g["consistent"] == pytest.approx(0.75)
    assert g["histogram"]["counts"] == [3, 0, 0, 0, 1]
    plot = tmp_path / "var.png"
    _run(store, "variance", "--plot", str(plot))
    assert plot.read_bytes().startswith(PNG)
    assert _error(store, "variance", "--verifier", "nobody") == (
        "error: no mc or cot_binary verifications match the filters")


def test_scaling_json(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("- {name: s, family: f, flops: 1e20}\n"
                      "- {name: m, family: f, flops: 1e21}\n"
                      "- {name: l, family: f, flops: 1e22}\n")
    gaps = tmp_path / "gaps.json"
    gaps.write_text(json.dumps([{"model": "s", "relative_gap": 0.1},
                                {"model": "m", "relative_gap": 0.2},
                                {"model": "l", "relative_gap": 0.4}]))
    plot = tmp_path / "scaling.png"
    data = _run(tmp_path, "scaling", "--models", str(models), "--gaps", str(gaps),
                "--plot", str(plot))
    (fit,) = data["fits"]
    # x = 20, 21, 22; y = .1, .2, .4: slope 0.15, intercept 0.2333.. - 0.15 * 21
    assert fit["slope"] == pytest.approx(0.15)
    assert fit["intercept"] == pytest.approx(0.7 / 3 - 0.15 * 21)
    resid = [0.1 - (0.15 * 20 + fit["intercept"]), 0.2 - (0.15 * 21 + fit["intercept"]),
             0.4 - (0.15 * 22 + fit["intercept"])]
    sst = sum((v - 0.7 / 3) ** 2 for v in (0.1, 0.2, 0.4))
    assert fit["r2"] == pytest.approx(1 - sum(r * r for r in resid) / sst)
    assert [p["log10_flops"] for p in data["points"]] == pytest.approx([20, 21, 22])
    assert plot.read_bytes().startswith(PNG)
    assert "exactly one" in _error(tmp_path, "scaling", "--models", str(models))


def test_scaling_from_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with store.writer("synth") as w:
        for i, name in enumerate(("fam-small", "fam-big")):  # self-verification: ver = gen
            w.extend(generate(SynthConfig(prompts=12, samples=4, methods=("mc",), seed=i,
                                          generator=name, verifier=name,
                                          discrimination=1.0 + i)))
    models = tmp_path / "models.json"
    models.write_text(json.dumps([{"name": "fam-small", "family": "fam", "flops": 1e21},
                                  {"name": "fam-big", "family": "fam", "flops": 1e22},
                                  {"name": "absent", "family": "fam", "flops": 1e23}]))
    data = _run(store.root, "scaling", "--models", str(models), "--spec", "mc:quantile=0.5")
    from gvstore.analysis.frames import Dataset
    from gvstore.analysis.gap import gap_table
    from gvstore.analysis.specs import parse
    from gvstore.replay import Projections

    want = {r.generator: r.rel_gap for r in gap_table(
        Dataset(Projections(store)), [parse("mc:quantile=0.5")], resamples=0)}
    got = {p["model"]: p["relative_gap"] for p in data["points"]}
    assert got["fam-small"] == pytest.approx(want["fam-small"])
    assert got["fam-big"] == pytest.approx(want["fam-big"])
    assert got["absent"] is None
    (fit,) = data["fits"]
    assert (fit["n"], fit["missing"]) == (2, 1)
    assert fit["slope"] == pytest.approx(want["fam-big"] - want["fam-small"])
    assert fit["r2"] is None


def test_all_commands_on_a_synthetic_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    with store.writer("synth") as w:
        w.extend(generate(SynthConfig(prompts=20, samples=8, repeats=3,
                                      methods=("mc", "cot_binary", "cot_score", "tournament"))))
    pk = _run(store.root, "passk", "--k", "1-8")
    values = [r["pass_at_k"] for r in pk["rows"]]
    assert values == sorted(values) and all(r["prompts"] == 20 for r in pk["rows"])
    corr = _run(store.root, "corr")
    assert len(corr["pairs"]) == 3 and all(p["spearman"] > 0 for p in corr["pairs"])
    var = _run(store.root, "variance", "--round", "0", "--generator", "sim-gen")
    assert {g["method"] for g in var["groups"]} == {"mc", "cot_binary"}
    assert all(0 <= g["mean_variance"] <= 0.25 for g in var["groups"])
