"""Sharing a study through a DVC remote, as a user does it (real DVC and git, no model).

The "cluster" is a git + DVC project made like the real one: the repository's .gitignore,
.dvcignore and .dvc/config (``core.no_scm``), stages/ and gvstore/ copied, the project's
params.yaml with a small study, and dvc.yaml with the project's own ``report`` stage. The
model stages are stood in for by ``gvstore store synth`` (one stage per task, writing that
task's store folder as a ``persist: true`` out, as generate does). Checked:

* ``dvc push`` to a local-folder remote, a fresh ``git clone``, ``dvc pull``: the store
  verifies clean, ``gvstore gap/passk/sweep --json`` and the report are byte-identical to the
  cluster's, ``dvc repro`` on the laptop rebuilds only the report (``cache: false``, so never
  pushed) and leaves ``dvc status`` and ``git status`` clean (the rebuilt report is the same
  bytes, so ``dvc.lock`` is unchanged);
* ``dvc.lock`` must travel in git: it is git-ignored here (a tidy checkout) and with
  ``core.no_scm`` DVC never adds it, so a clone without it cannot pull (DVC's "No file hash
  info found"); the recipe force-adds it once (``git add -f dvc.lock``);
* new work (a second task) is pushed as only its new files: its segment, its journal and its
  folder's listing; nothing already on the remote is sent again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO, subprocess_env

M = "smollm2-135m-instruct"  # the synthetic records name the study's model (params check it)
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
SYNTH = (f"gvstore store synth data/store/generate/${{key}} --task ${{key}} "
         f"--prompts ${{item.prompts}} --samples ${{sample.n}} --seed ${{base.seed}} "
         f"--methods mc,cot_score --generator {M} --verifier {M} --quiet")
ANALYSES = (  # commands that print numbers; their stdout must be the same bytes everywhere
    ("gap", "mc:quantile=0.8", "cot_score:tau=8", "--json"),
    ("passk", "--json"),
    ("sweep", "mc:quantile", "--values", "0.5,0.8,0.9", "--json"),
    ("report", "--json"),
)


def sh(root: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(cmd), cwd=root, env=subprocess_env(), capture_output=True,
                         text=True, timeout=300)
    if ok:
        assert out.returncode == 0, f"{' '.join(cmd)}: {out.stdout}{out.stderr}"
    return out


def params(tasks: dict[str, int]) -> dict[str, Any]:
    """The project's params.yaml with a small study over ``tasks`` (name: prompts)."""
    p: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    p["study"].update(tasks=list(tasks), methods=["mc", "cot_score"])
    p["tasks"] = {t: {"split": "test", "prompts": n} for t, n in tasks.items()}
    p["report"].update(specs=["mc:quantile=0.8", "cot_score:tau=8"], sweeps=["mc:quantile"],
                       resamples=200)
    return p


def make_cluster(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("stages", "gvstore"):
        shutil.copytree(REPO / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    real = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages = {"synth": {"foreach": "${tasks}", "do": {
        "cmd": SYNTH, "params": ["base.seed", "sample.n", "tasks.${key}"],
        "outs": [{"${base.store}/generate/${key}": {"persist": True}}]}},
        "report": real["stages"]["report"]}  # the project's report stage, as it is
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(params({"arith": 30}), sort_keys=False))
    sh(root, "git", "init", "-q")
    sh(root, "dvc", "init", "-q")
    for name in (".gitignore", ".dvcignore", ".dvc/config"):
        shutil.copy(REPO / name, root / name)
    sh(root, "git", "add", "-A")
    sh(root, *GIT, "commit", "-qm", "the study")
    return root


def analyses(root: Path) -> list[str]:
    return [sh(root, "gvstore", *cmd).stdout for cmd in ANALYSES]


def remote_files(remote: Path) -> set[str]:
    return {str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()}


def store_files(root: Path) -> list[str]:
    store = root / "data" / "store"
    return sorted(str(p.relative_to(store)) for p in store.rglob("*")
                  if p.is_file() and ".cache" not in p.parts)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The cluster's run, pushed; the lock committed; the remote's files after the push."""
    tmp = tmp_path_factory.mktemp("share")
    cluster, remote = make_cluster(tmp / "cluster"), tmp / "remote"
    sh(cluster, "dvc", "repro", "-q")
    sh(cluster, "dvc", "remote", "add", "-d", "shared", str(remote))
    start = time.monotonic()
    pushed = sh(cluster, "dvc", "push")
    push_s = time.monotonic() - start
    # before the lock is in git: a clone has dvc.yaml but nothing to pull from
    sh(cluster, *GIT, "commit", "-qam", "remote")
    no_lock = tmp / "no-lock"
    sh(tmp, "git", "clone", "-q", str(cluster), str(no_lock))
    failed = sh(no_lock, "dvc", "pull", ok=False)
    sh(cluster, "git", "add", "-f", "dvc.lock")  # the recipe's one extra step
    sh(cluster, *GIT, "commit", "-qm", "results")
    files = remote_files(remote)
    laptop = tmp / "laptop"
    sh(tmp, "git", "clone", "-q", str(cluster), str(laptop))
    start = time.monotonic()
    pulled = sh(laptop, "dvc", "pull")
    pull_s = time.monotonic() - start
    return {"tmp": tmp, "cluster": cluster, "remote": remote, "laptop": laptop,
            "pushed": pushed, "pulled": pulled, "push_s": push_s, "pull_s": pull_s,
            "no_lock_pull": failed, "files": files, "analyses": analyses(cluster)}


def test_a_clone_without_the_lock_cannot_pull(shared: dict[str, Any]) -> None:
    out = shared["no_lock_pull"]
    assert out.returncode != 0
    assert "No file hash info found" in out.stderr
    assert not list((shared["tmp"] / "no-lock").rglob("*.jsonl.zst"))  # not one segment


def test_clone_and_pull_give_the_same_numbers_and_a_clean_status(
        shared: dict[str, Any]) -> None:
    cluster = shared["cluster"]
    # what went to the remote: one segment, one journal, one folder listing (.dir)
    assert "3 files pushed" in shared["pushed"].stdout
    assert len(shared["files"]) == 3
    assert sum(f.endswith(".dir") for f in shared["files"]) == 1

    laptop = shared["laptop"]  # a fresh git clone, then dvc pull
    assert "3 files fetched" in shared["pulled"].stdout
    assert store_files(laptop) == store_files(cluster)
    [seg] = [f for f in store_files(laptop) if f.endswith(".jsonl.zst")]
    assert (laptop / "data/store" / seg).read_bytes() == \
        (cluster / "data/store" / seg).read_bytes()
    verify = json.loads(sh(laptop, "gvstore", "store", "verify", "--json").stdout)
    assert verify["ok"] and verify["records"] == 30 + 30 * 8 * 4  # prompt, gen, grade, 2 verif.
    assert verify["duplicates"] == 0 and verify["damaged_segments"] == []
    # the report is a cache: false out (never pushed): only it is out of date
    status = json.loads(sh(laptop, "dvc", "status", "--json").stdout)
    assert set(status) == {"report"}
    repro = sh(laptop, "dvc", "repro")
    assert "Running stage 'report'" in repro.stdout
    assert "Stage 'synth@arith' didn't change, skipping" in repro.stdout  # no model stage reruns
    assert sh(laptop, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert sh(laptop, "git", "status", "--porcelain").stdout == ""  # dvc.lock unchanged
    for name in ("report.json", "passk.png", "plots/passk.csv"):
        assert (laptop / "reports" / name).read_bytes() == \
            (cluster / "reports" / name).read_bytes()
    got = analyses(laptop)
    assert got == shared["analyses"]
    gap = json.loads(got[0])["results"][0]
    assert gap["spec"] == "mc:quantile=0.8" and gap["prompts"] == 30 and gap["generations"] == 240


def test_new_work_pushes_only_its_new_files(shared: dict[str, Any]) -> None:
    cluster, remote, laptop = shared["cluster"], shared["remote"], shared["laptop"]
    before = remote_files(remote)
    assert before == shared["files"]
    # new work on the cluster: a second task; dvc repro runs its stage and the report only
    (cluster / "params.yaml").write_text(
        yaml.safe_dump(params({"arith": 30, "sudoku": 6}), sort_keys=False))
    repro = sh(cluster, "dvc", "repro")
    assert "Running stage 'synth@sudoku'" in repro.stdout
    assert "Running stage 'synth@arith'" not in repro.stdout
    pushed = sh(cluster, "dvc", "push")
    after = remote_files(remote)
    assert before < after and len(after - before) == 3  # segment, journal, folder listing
    assert "3 files pushed" in pushed.stdout
    assert "Everything is up to date" in sh(cluster, "dvc", "push").stdout  # nothing twice
    sh(cluster, *GIT, "commit", "-qam", "sudoku")
    sh(laptop, "git", "pull", "-q")
    pulled = sh(laptop, "dvc", "pull")
    assert "1 file added" in pulled.stdout or "data/store/generate/sudoku" in pulled.stdout
    assert store_files(laptop) == store_files(cluster)
    assert set(json.loads(sh(laptop, "dvc", "status", "--json").stdout)) == {"report"}
    sh(laptop, "dvc", "repro", "-q")
    assert sh(laptop, "git", "status", "--porcelain").stdout == ""
    got = analyses(laptop)
    assert got == analyses(cluster)
    tasks = {r["task"] for r in json.loads(got[1])["rows"]}
    assert tasks == {"arith", "sudoku"}


@pytest.mark.slow
def test_the_real_pipeline_shares_its_store(tmp_path: Path, prepared_models: Path) -> None:
    """The project's own dvc.yaml, stages and model (the pipeline test's small study, a few
    minutes on 2 cores): after push, clone and pull the laptop has every store folder and
    the same numbers; only what is never pushed (the converted model, ``cache: false``, and
    the stages that depend on it) stays out of date there, and the report is rebuilt offline
    with ``dvc repro --single-item report`` to the same bytes (dvc.lock unchanged)."""
    from helpers import make_project, repro

    cluster = make_project(tmp_path / "cluster", prepared_models)
    out = repro(cluster)
    assert out.returncode == 0, out.stdout + out.stderr
    sh(cluster, "dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    sh(cluster, "dvc", "push")
    sh(cluster, "git", "add", "-f", "dvc.lock")
    sh(cluster, *GIT, "commit", "-qam", "results")
    laptop = tmp_path / "laptop"
    sh(tmp_path, "git", "clone", "-q", str(cluster), str(laptop))
    sh(laptop, "dvc", "pull")
    assert store_files(laptop) == store_files(cluster)
    assert not (laptop / "data" / "models").exists()  # cache: false, never pushed
    assert json.loads(sh(laptop, "gvstore", "store", "verify", "--json").stdout)["ok"]
    sh(laptop, "dvc", "repro", "--single-item", "report")
    model_stages = {"prepare-model@smollm2-135m-instruct", "generate@arith",
                    "verify@mc-arith", "verify@cot_binary-arith", "verify@tournament-arith"}
    assert set(json.loads(sh(laptop, "dvc", "status", "--json").stdout)) == model_stages
    assert sh(laptop, "git", "status", "--porcelain").stdout == ""
    assert (laptop / "reports/report.json").read_bytes() == \
        (cluster / "reports/report.json").read_bytes()
    cmds = (("report", "--json"), ("passk", "--json"),
            ("gap", "mc:quantile=0.5", "tournament:rounds=2", "--json"))
    for cmd in cmds:
        assert sh(laptop, "gvstore", *cmd).stdout == sh(cluster, "gvstore", *cmd).stdout
