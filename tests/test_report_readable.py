"""A report a researcher can read: parse failures flagged next to the gaps, headline metrics
that `dvc metrics show` prints as short rows, `dvc plots show` entries with named axes or
images, integer pass@k ticks, a degenerate sweep drawn as a warning, one tie rule shared by
the report and `gvstore sweep`, and tables that print integers as integers and never cut a
spec."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import StoreBuilder, run_in
from rich.console import Console
from typer.testing import CliRunner

from gvstore.analysis import plots
from gvstore.analysis.sweep import SweepPoint, SweepResult, best_index
from gvstore.output import table
from gvstore.params import load
from gvstore.report import build, views
from gvstore.store import Store

REPO = Path(__file__).resolve().parents[1]
ENV = {"GVSTORE_NO_PROGRESS": "1"}


def _params(tmp_path: Path, tasks: list[str], **report: Any) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(models=["g"], generators=["g"], verifiers=["v"], tasks=tasks)
    raw["models"] = {"g": {"package": "x"}}
    raw["report"].update(report)
    raw["base"].update(reports=str(tmp_path / "reports"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _hand_store(root: Path) -> Store:
    """4 prompts x 4 samples of task arith: p0 all wrong, p1 and p2 their first 2 and 3
    samples right, p3 all right; mc scores 0.8 right, 0.2 wrong (so many quantiles tie).

    cot_score parses on 2 of 16 samples (both 7.0); cot_binary has one null score recorded
    as ok and one score with status ``partial`` (2 of 16 unparsed); mc parses everywhere;
    tournament: two round-0 matches per prompt, both undecided on p0 (2 of 8)."""
    b = StoreBuilder(root, task="arith")
    for i in range(4):
        p = b.prompt(f"p{i}")
        utils = [1.0 if j <= i else 0.0 for j in range(4)]  # p3 all right
        utils = [0.0] * 4 if i == 0 else utils  # p0 all wrong
        g = b.gens(p, utils)
        b.scores(g, "mc", [0.2 + 0.6 * u for u in utils])
        b.scores(g, "cot_score", [7.0 if (i, j) in ((1, 0), (2, 3)) else None
                                  for j in range(4)])
        for j, gen in enumerate(g):
            if (i, j) == (1, 1):
                b.verification(gen, "cot_binary", None, status="ok")
            elif (i, j) == (2, 2):
                b.verification(gen, "cot_binary", 1.0, status="partial")
            else:
                b.verification(gen, "cot_binary", utils[j])
        b.match(p, g[0], g[1], None if i == 0 else g[0], 0)
        b.match(p, g[2], g[3], None if i == 0 else g[3], 0)
    return b.write()


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("readable")
    store = _hand_store(tmp / "store")
    path = _params(tmp, ["arith"], specs=["mc:quantile=0.5", "cot_score:tau=5",
                                          "and(mc:quantile=0.5,cot_binary:tau=1)"],
                   sweeps=["cot_score:tau", "mc:quantile"], passk=[1, 2, 4], resamples=20)
    return store.root, path, build(store, load(path), tmp / "reports").metrics


def test_parse_failure_rates_by_hand_and_the_flag(hand: tuple[Path, Path, dict]) -> None:
    _, params, m = hand
    rates = {r["method"]: r for r in m["parse"]}
    assert {k: (r["verifications"], r["failed"], r["samples"], r["parsed_samples"],
                r["flagged"]) for k, r in rates.items()} == {
        "mc": (16, 0, 16, 16, False), "cot_score": (16, 14, 16, 2, True),
        "cot_binary": (16, 2, 16, 14, False), "tournament": (8, 2, 16, 12, False)}
    assert rates["cot_score"]["unparsed"] == 14 / 16
    gaps = m["gap"]["arith"]["g"]["v"]["round0"]
    assert gaps["cot_score:tau=5"]["unparsed"] == pytest.approx(0.875)
    assert gaps["cot_score:tau=5"]["flagged"] is True
    both = gaps["and(mc:quantile=0.5,cot_binary:tau=1)"]
    assert both["unparsed"] == pytest.approx(0.125) and both["unparsed_method"] == "cot_binary"
    assert not both["flagged"] and gaps["mc:quantile=0.5"]["unparsed"] == 0.0
    text = _render(views(m))
    assert "! cot_score by verifier v on arith (generator g, round 0): 14 of 16" in text
    assert "88% !" in text and "2 of 16" in text
    # the one parsed value (7.0) makes a one-point sweep: said so, not shown as a choice
    sel = m["selection"]["arith"]["g"]["v"]["round0"]["cot_score:tau"]
    assert sel["points"] == 1 and sel["flagged"]
    assert "cot_score:tau on arith (generator g, verifier v, round 0): one value swept" in text
    out = Path(load(params).base.reports)
    assert json.loads((out / "metrics" / "parse" / "arith" / "g" / "v" / "r0" /
                       "cot_score.json").read_text()) == {"unparsed": 0.875}


def _render(items: list[Any], width: int = 140) -> str:
    con = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    for it in items:
        con.print(it)
    return con.export_text()


def test_headline_files_hold_scalars_and_the_full_report_the_rest(
        hand: tuple[Path, Path, dict]) -> None:
    _, params, m = hand
    out = Path(load(params).base.reports)
    files = sorted((out / "metrics").rglob("*.json"))
    kinds = {f.relative_to(out / "metrics").parts[0] for f in files}
    assert kinds == {"gap", "threshold", "passk", "parse", "verifier", "nscale"}
    for f in files:
        d = json.loads(f.read_text())
        assert d and all(v is None or isinstance(v, (int, float)) for v in d.values()), f
    assert json.loads((out / "metrics" / "passk" / "arith" / "g" / "r0" / "k=1.json")
                      .read_text()) == {"pass_at_k": 0.5625}  # (0 + 2/4 + 3/4 + 4/4) / 4
    assert json.loads((out / "report.json").read_text()) == m


def test_verifier_quality_and_n_scaling_sections(hand: tuple[Path, Path, dict]) -> None:
    """mc scores 0.8 on the 9 right samples, 0.2 on the 7 wrong: AUC 1; ECE = (|9 - 9 x 0.8|
    + |0 - 7 x 0.2|) / 16 = 0.2; Brier = 16 x 0.2^2 / 16 = 0.04. pass@1 = 0.5625."""
    _, params, m = hand
    (q,) = [r for r in m["quality"] if r["method"] == "mc"]
    assert q["auc"] == 1.0 and q["ece"] == pytest.approx(0.2) and \
        q["brier"] == pytest.approx(0.04)
    out = Path(load(params).base.reports)
    row = json.loads((out / "metrics" / "verifier" / "arith" / "g" / "v" / "r0" / "mc.json")
                     .read_text())
    assert row == {"auc": 1, "ece": 0.2}
    specs = {r["filter"] for r in m["nscale"]}
    assert specs == {"mc:quantile=0.5", "cot_score:tau=5"}  # and(...) is no single score
    (mc,) = [r for r in m["nscale"] if r["filter"] == "mc:quantile=0.5"]
    assert [p["n"] for p in mc["points"]] == [1, 2, 4]
    assert mc["points"][0]["pass_at_n"] == pytest.approx(0.5625)
    text = _render(views(m))
    assert "verifier quality" in text and "scaling with n" in text
    assert (out / "nscale.png").is_file() and (out / "verifier_roc.png").is_file()


def test_report_and_gvstore_sweep_choose_the_same_tied_threshold(
        hand: tuple[Path, Path, dict]) -> None:
    from gvstore.cli.app import app

    store, _, m = hand
    res = CliRunner().invoke(app, ["--store", str(store), "sweep", "mc:quantile",
                                   "--select-on", "gap", "--select-seed", "0",
                                   "--resamples", "20", "--json"], env=ENV)
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    (cli,) = shown["selection"]
    rep = m["selection"]["arith"]["g"]["v"]["round0"]["mc:quantile"]
    assert rep["held_out_value"] == cli["held_out_value"]
    assert rep["in_sample_value"] == cli["in_sample_value"]
    # many quantiles keep the same samples here: the choice is the smallest of the tied best
    (sweep,) = shown["sweeps"]
    gaps = [p["gap"] for p in sweep["points"]]
    best = max(gaps)
    tied = [p["value"] for p in sweep["points"] if p["gap"] >= best - 1e-12]
    assert len(tied) > 1 and cli["in_sample_value"] == min(tied)


def test_best_index_takes_the_smallest_of_the_tied_values() -> None:
    assert best_index(np.array([0.1, 0.3, 0.3 + 1e-15, 0.2]), [0.1, 0.2, 0.3, 0.4]) == 1
    assert best_index(np.array([0.5, 0.5, 0.5]), [0.9, 0.5, 0.1]) == 2  # order given is moot
    assert best_index(np.array([0.5, 0.5 - 1e-9]), [0.2, 0.1]) == 0  # 1e-9 is no tie
    assert best_index(np.array([np.nan, 0.1, 0.1]), [0.0, 0.5, 0.6]) == 1  # NaN never wins
    assert best_index(np.array([np.nan, np.nan]), [0.7, 0.3]) == 1


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    figs: list[Any] = []

    def save(fig: Any, path: Path, dpi: float | None = None) -> Path:
        figs.append(fig)
        return Path(path)

    monkeypatch.setattr(plots, "save", save)
    return figs


def test_passk_ticks_are_the_integer_ks(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    figs = _capture(monkeypatch)
    plots.passk_curve(tmp_path / "p.png", [("generator g on t (round 0)", [1, 2, 4, 8, 16],
                                            [0.1, 0.2, 0.3, 0.4, 0.5])])
    (ax,) = figs[0].axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8", "16"]
    assert ax.get_legend().get_texts()[0].get_text() == "generator g on t (round 0)"


def _result(values: list[float], task: str = "t") -> SweepResult:
    r = SweepResult(task, "g", 0, "v", "cot_score:tau", "tau", 4, 0.5)
    for v in values:
        r.points.append(SweepPoint(v, f"cot_score:tau={v:g}", 0.5, 0.1 * v, 0.0, 0.2 * v,
                                   0.1, 0.0, 0.2, 3, 0))
    return r


def test_degenerate_sweep_is_a_warning_and_the_choice_is_marked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    figs = _capture(monkeypatch)
    plots.sweep_figure([_result([7.0], "a"), _result([1.0, 2.0, 3.0], "b")], tmp_path / "s.png",
                       chosen={("b", "g", "v", 0): 2.0})
    fig = figs[0]
    warning = " ".join(t.get_text() for t in fig.texts)
    assert "warning: a, generator g, verifier v: 1 value swept" in warning
    gap_ax = fig.axes[0]
    labels = gap_ax.get_legend_handles_labels()[1]
    assert labels == ["generator g, verifier v (b)",
                      "95% bootstrap interval (shaded, each line's colour)",
                      "chosen (held-out) 2"]
    curves = [line for line in gap_ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(curves) == 1  # the one-point group drew no line


def test_dvc_yaml_plots_name_their_axes_or_are_images() -> None:
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert "plots" not in raw["stages"]["report"]  # no folder of plots on DVC's defaults
    for entry in raw["plots"]:
        if isinstance(entry, str):
            assert entry.endswith(".png"), entry
            continue
        ((name, d),) = entry.items()
        assert {"x", "y", "title", "x_label", "y_label", "template"} <= set(d), name
        assert (REPO / ".dvc" / "plots" / f"{d['template']}.json").is_file(), name


def _dvc_project(root: Path, reports: Path) -> Path:
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copytree(reports, root / "reports")
    run_in(root, "git", "init", "-q")
    run_in(root, "dvc", "init", "-q")
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    return root


def test_dvc_metrics_show_rows_are_short_and_plots_show_has_no_default_axes(
        tmp_path: Path) -> None:
    """A default-study-shaped store (its model name, two tasks, the four methods, its specs
    and sweeps) in a real DVC project: `dvc metrics show` prints one short row per headline
    file, `dvc plots show` every plot with its own axes and no load error."""
    from gvstore.synth import SynthConfig, generate

    store = Store(tmp_path / "store")
    name = "smollm2-135m-instruct"
    with store.writer("synth") as w:
        for task in ("arith", "sudoku"):
            w.extend(generate(SynthConfig(
                prompts=6, samples=8, task=task, generator=name, verifier=name,
                methods=("mc", "cot_binary", "cot_score", "tournament"))))
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["report"]["resamples"] = 20
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    build(store, load(tmp_path / "params.yaml"), tmp_path / "reports")
    root = _dvc_project(tmp_path / "p", tmp_path / "reports")
    lines = run_in(root, "dvc", "metrics", "show").splitlines()
    files = list((root / "reports" / "metrics").rglob("*.json"))
    assert len(lines) == 1 + len(files) > 30
    assert max(map(len, lines)) < 200, max(lines, key=len)
    shown = json.loads(run_in(root, "dvc", "plots", "show", "--json"))
    assert not shown.get("errors"), shown["errors"]
    vega = [p for ps in shown["data"].values() for p in ps if p["type"] == "vega"]
    images = [p for ps in shown["data"].values() for p in ps if p["type"] == "image"]
    assert len(vega) == 4 and len(images) == 7
    for p in vega:
        enc = p["content"]["encoding"]
        assert enc["x"]["field"] in ("k", "value") and enc["y"]["field"] in ("pass_at_k", "gap")
        assert enc["color"]["field"] == "group"


def test_tables_print_whole_numbers_as_integers_and_never_cut_a_spec() -> None:
    spec = "and(mc:quantile=0.8,cot_binary:tau=1,learned(lr,mc,cot_score):quantile=0.5)"
    t = table("t", ["", "spec", "value", "gap"], [["a", spec, 8.0, 0.0], ["b", "mc:tau=1", 2.0,
                                                                          0.25]])
    text = _render([t], width=70)
    # broken after commas only, every character kept
    assert "│ and(mc:quantile=0.8,cot_binary:tau=1,  │" in text
    assert "│ learned(lr,mc,cot_score):quantile=0.5) │" in text
    assert "│ mc:tau=1 " in text
    assert "│ 8 " in text and "│ 2 " in text and "0.0000" in text and "0.2500" in text
    assert "field" in text.splitlines()[2]


def test_a_sweep_with_no_data_still_writes_the_files_dvc_yaml_names(tmp_path: Path) -> None:
    from gvstore.synth import SynthConfig, generate

    store = Store(tmp_path / "store")
    with store.writer("synth") as w:
        w.extend(generate(SynthConfig(prompts=4, samples=2, methods=("mc",), task="arith",
                                      generator="g", verifier="v")))
    path = _params(tmp_path, ["arith"], specs=["or(mc:quantile=0.5,mc:tau=0.9)"],
                   sweeps=["tournament:rounds"],
                   resamples=0)
    m = build(store, load(path), tmp_path / "reports").metrics
    assert m["selection"] == {}
    out = tmp_path / "reports"
    assert (out / "plots" / "sweep-tournament_rounds.csv").read_text() == \
        "group,value,gap,gap_lo,gap_hi,rel_gap,kept\n"
    assert (out / "sweep-tournament_rounds.png").stat().st_size > 1000
    assert m["nscale"] == [] and (out / "nscale.png").is_file()  # no spec with a rule


def test_headline_paths_are_safe_whatever_the_names() -> None:
    from gvstore.report.headline import slug

    assert slug("..") == "_.." and slug(".") == "_." and slug("") == "_"
    assert slug("a/../b") == "a_.._b" and slug("$\\frac{$") == "frac"
    assert slug("and(mc:quantile=0.8,cot_binary:tau=1)") == \
        "and_mc_quantile=0.8_cot_binary_tau=1"
