"""The study as users run it: real `dvc repro` on a small configuration with the real model.

A copy of the project (dvc.yaml, stages/, gvstore/, a small params.yaml) is made in a temp
folder, with the embedded model already prepared. Checked: a full run leaves metrics and
plots; a second `dvc repro` does nothing; a run killed with SIGKILL during `generate` or
`verify` and started again ends with the same metrics as the uninterrupted run, no duplicate
records, and a clean `store verify`.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from helpers import make_project, repro, run_watched

from gvstore.records import Generation, Grade
from gvstore.store import Store


def repro_killed_when(root: Path, folder: str) -> None:
    """Start `dvc repro`, SIGKILL its whole process group once ``folder`` holds a segment."""
    target = root / "data" / "store" / folder

    def has_segment() -> bool:
        return target.is_dir() and any(p.suffix == ".zst" for p in target.iterdir())

    res = run_watched(["dvc", "repro"], root, stop=has_segment)
    if res.returncode != -signal.SIGKILL:
        pytest.fail(f"dvc repro ended ({res.returncode}) before {folder} appeared:\n"
                    f"{res.stdout}{res.stderr}"[-4000:])
    # DVC's lock of the killed run is stale; DVC detects that on the next run.


def metrics(root: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((root / "reports" / "report.json").read_text())


def strict_base(store: Store, model: str) -> float:
    """The gap's base worked out from the records: the mean over prompts of each prompt's mean
    strict grade (every one of the 3 x 4 arith samples graded once)."""
    prompt_of = {g.id: g.prompt_id for g in store.iter_records(kinds=("generation",))
                 if isinstance(g, Generation) and g.model == model}
    grades: dict[str, list[float]] = {}
    for r in store.iter_records(kinds=("grade",)):
        if isinstance(r, Grade) and r.generation_id in prompt_of:
            grades.setdefault(prompt_of[r.generation_id], []).append(r.strict)
    assert len(prompt_of) == 12 and sorted(map(len, grades.values())) == [4, 4, 4]
    return sum(sum(u) / len(u) for u in grades.values()) / len(grades)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, prepared_models: Path) -> Path:
    root = make_project(tmp_path_factory.mktemp("pipe") / "baseline", prepared_models)
    out = repro(root)
    assert out.returncode == 0, out.stdout + out.stderr
    return root


def test_full_run_leaves_metrics_and_plots_and_a_rerun_does_nothing(baseline: Path) -> None:
    m = metrics(baseline)
    gap = m["gap"]["arith"]["smollm2-135m-instruct"]["smollm2-135m-instruct"]["round0"]
    assert set(gap) == {"mc:quantile=0.5", "tournament:rounds=2"}
    assert gap["mc:quantile=0.5"]["base"] == pytest.approx(
        strict_base(Store(baseline / "data" / "store"), "smollm2-135m-instruct"), abs=1e-6)
    assert m["passk"]["arith"]["smollm2-135m-instruct"]["round0"]["pass@4"] is not None
    for png in ("passk.png", "sweep-mc_quantile.png"):
        assert (baseline / "reports" / png).stat().st_size > 1000
    rep = Store(baseline / "data" / "store").verify()
    assert rep.ok and rep.duplicates == 0
    again = repro(baseline)
    assert again.returncode == 0
    assert "Data and pipelines are up to date" in again.stdout + again.stderr


@pytest.mark.parametrize("folder", [
    "generate/arith",
    # the same resume machinery, killed inside a verify stage: ~2 min more (`-m slow`)
    pytest.param("verify/cot_binary-arith", marks=pytest.mark.slow),
])
def test_killed_run_resumes_to_the_same_metrics(folder: str, baseline: Path, tmp_path: Path,
                                                prepared_models: Path) -> None:
    root = make_project(tmp_path / "p", prepared_models)
    repro_killed_when(root, folder)
    out = repro(root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert metrics(root) == metrics(baseline)
    store = Store(root / "data" / "store")
    rep = store.verify()
    assert rep.ok and rep.duplicates == 0, rep
    want = {r.id for r in Store(baseline / "data" / "store").records()}
    assert {r.id for r in store.records()} == want
