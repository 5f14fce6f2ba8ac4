"""Rounds of self-improvement: the params section, its checks, and how dvc.yaml unrolls it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.params import load, validate

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
runner = CliRunner()

M0, M1, M2 = "smollm2-135m-instruct", "smollm2-135m-instruct-r1", "smollm2-135m-instruct-r2"


def _config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "configs" / "rounds-arith.yaml").read_text())


def test_rounds_config_is_the_default_study_plus_rounds() -> None:
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    config = _config()
    assert {k: v for k, v in config.items() if k != "rounds"} == \
        {k: v for k, v in default.items() if k != "rounds"}
    assert default["rounds"]["start"] == [] and default["rounds"]["steps"] == {}
    assert config["rounds"]["start"] == [M0]
    assert config["rounds"]["steps"] == {M1: M0, M2: M1}
    same = ("task", "prompts", "verifier", "filter", "update", "dir")
    assert {k: config["rounds"][k] for k in same} == {k: default["rounds"][k] for k in same}


def test_rounds_config_validates_and_counts_its_stages() -> None:
    res = runner.invoke(app, ["params", "validate", str(REPO / "configs" / "rounds-arith.yaml")])
    assert res.exit_code == 0, res.output
    # 15 stages of the default study, 3 of round 0 and 5 per trained round.
    assert "28 stages" in res.stdout and "2 rounds from smollm2-135m-instruct" in res.stdout


def _write(tmp_path: Path, edit: dict[str, Any]) -> Path:
    raw = _config()
    for dotted, value in edit.items():
        node = raw
        *path, last = dotted.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


MISTAKES = {
    "steps without start": ({"rounds.start": []}, "rounds.steps needs rounds.start"),
    "two start models": ({"rounds.start": [M0, M1]}, "one name"),
    "start not prepared": ({"rounds.start": ["gpt-9"]}, "'gpt-9' is not listed in study.models"),
    "broken chain": ({"rounds.steps": {M1: M0, M2: M0}},
                     f"round 2 ({M2}) must start from round 1's model '{M1}', not '{M0}'"),
    "name taken": ({"rounds.steps": {M0 + "-x": M0, M0: M0 + "-x"}}, "appears twice"),
    "bad folder name": ({"rounds.steps": {"a/b": M0}}, "not a usable folder name"),
    "unknown verifier": ({"rounds.verifier": "oracle"}, "'oracle' is not 'self'"),
    "bad filter": ({"rounds.filter": "mc:quantile=2"}, "rounds.filter"),
    "unknown update": ({"rounds.update": "ppo"}, "$.rounds.update"),
    "unknown setting": ({"rounds.hyperparameters": {"stepz": 3}}, "unknown setting 'stepz'"),
    "bad setting": ({"rounds.hyperparameters": {"steps": 0}}, "rounds.hyperparameters"),
    "batch vs micro": ({"rounds.hyperparameters": {"batch_size": 6, "micro_batch_size": 4}},
                       "not a multiple of micro_batch_size"),
    "unknown task": ({"rounds.task": "chess"}, "unknown task 'chess'"),
    "bad prompts": ({"rounds.prompts": {"split": "test", "prompts": 0}},
                    "rounds.prompts.prompts must be >= 1"),
    "bad heldout": ({"rounds.heldout": {"split": "test", "offset": -1}},
                    "rounds.heldout.offset must be >= 0"),
    "heldout typo": ({"rounds.heldout": {"split": "test", "promts": 4}},
                     "unknown field `promts` - at `$.rounds.heldout`"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_round_mistakes_are_one_line_errors(name: str, tmp_path: Path) -> None:
    edit, expect = MISTAKES[name]
    res = runner.invoke(app, ["params", "validate", "--no-data", str(_write(tmp_path, edit))])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert expect in lines[0]


def test_chain_rounds_and_files(tmp_path: Path) -> None:
    params = load(_write(tmp_path, {"rounds.dir": "x/rounds", "rounds.folders": {
        M0: f"data/models/{M0}", M1: f"x/rounds/models/{M1}", M2: f"x/rounds/models/{M2}"}}))
    validate(params, check_data=False)
    r = params.rounds
    assert r.chain() == [M0, M1, M2]
    assert [r.round_of(m) for m in r.chain()] == [0, 1, 2]
    assert r.parent_of(M2) == M1
    assert r.train_file(M1) == Path("x/rounds/train") / f"{M1}.jsonl"
    assert r.model_dir(M2) == Path("x/rounds/models") / M2
    with pytest.raises(GvstoreError, match="not a model of the rounds"):
        r.round_of("other")
    with pytest.raises(GvstoreError, match="not trained in the rounds"):
        r.parent_of(M0)


def test_fixed_verifier_and_ground_truth_are_configurations(tmp_path: Path) -> None:
    from gvstore.steps import rounds

    for verifier, expect in ((M0, [M0, M0, M0]), ("self", [M0, M1, M2]),
                             ("ground_truth", [None, None, None])):
        params = load(_write(tmp_path, {"rounds.verifier": verifier}))
        validate(params, check_data=False)
        assert [rounds.verifier_name(params, m) for m in params.rounds.chain()] == expect
        assert (rounds.filter_spec(params) is None) == (verifier == "ground_truth")


def test_round_model_of_a_missing_folder_says_which_stage_makes_it(tmp_path: Path) -> None:
    from gvstore.steps import rounds

    params = load(_write(tmp_path, {"rounds.dir": str(tmp_path / "rounds")}))
    assert rounds.round_model(params, M0).name == M0
    with pytest.raises(GvstoreError, match="its finetune stage makes it"):
        rounds.round_model(params, M1)


def test_dvc_unrolls_the_rounds(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / "configs" / "rounds-arith.yaml", root / "params.yaml")
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, env=env)
    out = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == 28
    for step in ("generate", "grade", "verify"):
        assert f"round-{step}@{M0}" in out
    for m in (M1, M2):
        for step in ("filter", "finetune", "generate", "grade", "verify"):
            assert f"round-{step}@{m}" in out
    # The chain is in the DAG: round 2's generation waits for round 1's model and data.
    dag = subprocess.run(["dvc", "dag", "--dot", f"round-generate@{M2}"], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout
    for stage in (f"round-finetune@{M2}", f"round-filter@{M2}", f"round-verify@{M1}",
                  f"round-finetune@{M1}", f"round-verify@{M0}", f"prepare-model@{M0}"):
        assert stage in dag
    # The default params run no round stage.
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    out = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == 15 and not any(s.startswith(("r0-", "round-")) for s in out)


# ---- the rounds as users run them: real DVC, the real model, a tiny configuration ----------

ROUNDS = {
    "study": {"methods": ["mc"]},
    "report": {"specs": ["mc:quantile=0.5"], "sweeps": ["mc:quantile"]},
    "rounds": {
        "start": [M0], "steps": {M1: M0}, "folders": {M0: f"data/models/{M0}",
                                                      M1: f"data/rounds/models/{M1}"},
        "verifier": "self", "filter": "mc:quantile=0.5",
        "update": "sft", "preset": "cpu", "threads": 1,
        "hyperparameters": {"steps": 2, "batch_size": 2, "micro_batch_size": 2,
                            "max_length": 256, "learning_rate": 1.0e-4},
    },
}


@pytest.fixture(scope="module")
def rounds_project(tmp_path_factory: pytest.TempPathFactory, prepared_models: Path) -> Path:
    from helpers import make_project, repro

    root = make_project(tmp_path_factory.mktemp("rounds") / "proj", prepared_models, ROUNDS)
    out = repro(root)
    assert out.returncode == 0, out.stdout + out.stderr
    return root


@pytest.mark.slow  # a real DVC study plus one trained round: ~5 min on 2 cores
def test_a_round_trains_a_model_whose_samples_carry_its_digest_and_round(
        rounds_project: Path) -> None:
    import json

    from gvstore.records import Generation
    from gvstore.store import Store

    root = rounds_project
    manifest = json.loads((root / "data/rounds/models" / M1 / "gvstore-model.json").read_text())
    assert manifest["round"] == 1 and manifest["parent"]["name"] == M0
    train = (root / "data/rounds/train" / f"{M1}.jsonl").read_text().splitlines()
    assert train and all(json.loads(line)["messages"][-1]["role"] == "assistant"
                         for line in train)
    gens = [r for r in Store(root / "data/store").iter_records(kinds=("generation",))
            if isinstance(r, Generation)]
    r0 = [g for g in gens if g.model == M0]
    r1 = [g for g in gens if g.model == M1]
    assert len(r0) == len(r1) == 3 * 4  # 3 prompts x n=4 each round
    assert {g.round for g in r0} == {0} and {g.round for g in r1} == {1}
    assert {g.model_digest for g in r1} == {manifest["source_digest"]}
    assert manifest["source_digest"] != manifest["parent"]["digest"]
    assert manifest["parent"]["digest"] == r0[0].model_digest
    # Round 0 shares its records with the main study: its round folder holds nothing new.
    assert not list((root / "data/store/rounds" / M0 / "generate").rglob("*.zst"))
    assert list((root / "data/store/rounds" / M1 / "generate").rglob("*.zst"))
    assert list((root / "data/store/rounds" / M1 / "verify").rglob("*.zst"))


@pytest.mark.slow  # a real DVC study plus one trained round: ~5 min on 2 cores
def test_the_round_report_and_gvstore_rounds(rounds_project: Path) -> None:
    import json

    from helpers import subprocess_env

    root = rounds_project
    m = json.loads((root / "reports" / "report.json").read_text())
    rows = m["rounds"]["rows"]
    assert [(r["round"], r["model"]) for r in rows] == [(0, M0), (1, M1)]
    for r in rows:
        assert 0.0 <= r["acc_strict"] <= 1.0 and 0.0 <= r["acc_flexible"] <= 1.0
        assert set(r["pass_at_k"]) == {"1", "2", "4"}
        assert r["verifier"] == r["model"]  # self-verification
    assert (root / "reports" / "rounds.png").stat().st_size > 1000
    assert (root / "reports" / "plots" / "rounds.csv").read_text().count("\n") == 3
    out = subprocess.run(["gvstore", "rounds", "--json"], cwd=root, env=subprocess_env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert [r["model"] for r in json.loads(out.stdout)["rows"]] == [M0, M1]
    table = subprocess.run(["gvstore", "rounds"], cwd=root,
                           env={**subprocess_env(), "COLUMNS": "250"},
                           capture_output=True, text=True)
    assert table.returncode == 0 and M1 in table.stdout and "acc strict" in table.stdout


@pytest.mark.slow  # a real DVC study plus one trained round: ~5 min on 2 cores
def test_a_second_repro_does_nothing(rounds_project: Path) -> None:
    from helpers import repro

    out = repro(rounds_project)
    assert out.returncode == 0 and "Data and pipelines are up to date" in out.stdout, \
        out.stdout + out.stderr


def test_paper_scale_rounds_config_has_three_rounds_with_the_papers_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import SHARED_DATA

    from gvstore.steps import rounds

    monkeypatch.setenv("GVSTORE_DATA", str(SHARED_DATA))
    params = load(REPO / "configs" / "rounds-gsm8k-qwen2.5.yaml")
    validate(params, check_data=(SHARED_DATA / "gsm8k").is_dir())
    assert params.rounds.chain() == ["qwen2.5-1.5b"] + [f"qwen2.5-1.5b-r{i}" for i in (1, 2, 3)]
    assert params.sample.backend == params.verify.backend == "vllm" and params.sample.n == 128
    hp = rounds.hparams(params, cuda=True)
    assert (hp.steps, hp.batch_size, hp.learning_rate, hp.max_length) == (2000, 64, 1e-6, 2048)
    assert (hp.beta, hp.sft_weight, hp.precision) == (0.05, 1.0, "auto")


@pytest.mark.parametrize("config", [REPO / "params.yaml", *sorted((REPO / "configs").glob(
    "*.yaml"))], ids=lambda p: p.name)
def test_every_params_file_expands_in_dvc_yaml(config: Path, tmp_path: Path) -> None:
    # dvc.yaml reads rounds.start and rounds.steps: a params file without them would not parse.
    from gvstore.cli.params import stage_count

    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(config, tmp_path / "params.yaml")
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    out = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == stage_count(load(config))


def test_a_params_file_without_the_rounds_section_says_what_to_add(tmp_path: Path) -> None:
    raw = _config()
    del raw["rounds"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["params", "validate", "--no-data", str(path)])
    assert res.exit_code == 1 and "rounds: {start: [], steps: {}}" in res.stderr
