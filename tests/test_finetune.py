"""The finetune step: SFT and RPO rounds on the real embedded model, and their error messages.

The real-model tests train SmolLM2-135M-Instruct for a few steps on CPU (fp32), first with SFT
(round 0 -> 1), then with RPO from the SFT output (round 1 -> 2), and check that the weights
moved, that the new folder names its own digest, and that generations of the new model are
recorded under that digest and round.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from gvstore.errors import GvstoreError
from gvstore.models import (
    MANIFEST,
    SMOLLM2,
    ModelSpec,
    default_name,
    folder_digest,
    resolve,
    spec_from_folder,
    trainable,
)
from gvstore.steps.finetune.config import CPU, PAPER, Hyperparams, build_hparams, help_texts
from gvstore.steps.finetune.data import load_data, to_trl
from gvstore.steps.finetune.step import FinetuneResult, finetune

QUESTIONS = [(2, 3), (4, 5), (7, 1), (6, 6)]


def _prompt(a: int, b: int) -> str:
    return f"What is {a}+{b}? End with: The answer is N."


def write_sft(path: Path) -> Path:
    """A training file in the format of `gvstore export sft`."""
    with open(path, "w") as fh:
        for i, (a, b) in enumerate(QUESTIONS):
            fh.write(json.dumps({
                "messages": [{"role": "user", "content": _prompt(a, b)},
                             {"role": "assistant",
                              "content": f"{a}+{b}={a + b}. The answer is {a + b}."}],
                "prompt_id": f"sha256:p{i}", "generation_id": f"sha256:g{i}", "weight": 1.0,
            }) + "\n")
    return path


def write_pairs(path: Path) -> Path:
    """A training file in the format of `gvstore export pairs`."""
    with open(path, "w") as fh:
        for i, (a, b) in enumerate(QUESTIONS):
            fh.write(json.dumps({
                "prompt": _prompt(a, b), "chosen": f"{a}+{b}={a + b}. The answer is {a + b}.",
                "rejected": f"The answer is {a + b + 1}.", "prompt_id": f"sha256:p{i}",
                "chosen_id": f"sha256:c{i}", "rejected_id": f"sha256:r{i}",
                "chosen_weight": 1.0, "rejected_weight": 0.0,
            }) + "\n")
    return path


# A few CPU steps; the CPU preset's learning rate (the paper's, 1e-6) still moves every weight.
TINY = CPU.replace(steps=3, batch_size=2, micro_batch_size=2, max_length=256)


# ---- without a model ---------------------------------------------------------------------------


def test_presets_and_help() -> None:
    assert (PAPER.steps, PAPER.batch_size, PAPER.learning_rate, PAPER.max_length) == \
        (2000, 64, 1e-6, 2048)
    assert (PAPER.beta, PAPER.sft_weight, PAPER.precision) == (0.05, 1.0, "auto")
    assert CPU.precision == "fp32" and CPU.max_length == 512 and CPU.steps < 20
    assert set(help_texts()) == set(msgspec.structs.asdict(PAPER))  # every field has help
    assert PAPER.accumulation == 8 and CPU.accumulation == 2


def test_hyperparams_are_checked_with_a_path(tmp_path: Path) -> None:
    with pytest.raises(GvstoreError, match=r"\$\.steps"):
        Hyperparams.from_mapping({"steps": 0})
    with pytest.raises(GvstoreError, match="unknown field `stpes`"):
        Hyperparams.from_mapping({"stpes": 3})
    with pytest.raises(GvstoreError, match="not a multiple of micro_batch_size"):
        build_hparams("cpu", batch_size=6, micro_batch_size=4)
    cfg = tmp_path / "hp.yaml"
    cfg.write_text("steps: 5\nbeta: 0.1\n")
    hp = build_hparams("cpu", cfg, beta=0.2)  # preset < file < options
    assert (hp.steps, hp.beta, hp.max_length) == (5, 0.2, CPU.max_length)
    cfg.write_text("learning_rate: -1\n")
    with pytest.raises(GvstoreError, match=r"hp.yaml: .*\$\.learning_rate"):
        build_hparams("cpu", cfg)


def test_bad_training_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GvstoreError, match="does not exist"):
        load_data("sft", tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(GvstoreError, match="holds no examples"):
        load_data("sft", empty)
    bad = write_sft(tmp_path / "bad.jsonl")
    with open(bad, "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(GvstoreError, match=r"bad.jsonl:5: not JSON"):
        load_data("sft", bad)
    # An SFT file given to rpo names the first line and what it lacks.
    with pytest.raises(GvstoreError, match=r":1: .*missing or not a string: prompt, chosen, "):
        load_data("rpo", write_sft(tmp_path / "sft.jsonl"))
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(GvstoreError, match=":1: 'messages' must list at least"):
        load_data("sft", wrong)
    wrong.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                              {"role": "user", "content": "a"}]}) + "\n")
    with pytest.raises(GvstoreError, match=":1: the last message must be"):
        load_data("sft", wrong)
    with pytest.raises(GvstoreError, match="unknown method"):
        load_data("ppo", wrong)


def test_trl_formats(tmp_path: Path) -> None:
    sft = load_data("sft", write_sft(tmp_path / "s.jsonl"))
    pairs = load_data("rpo", write_pairs(tmp_path / "p.jsonl"))
    assert len(sft.examples) == 4 and sft.digest.startswith("sha256:")
    chat = to_trl("sft", sft.examples, chat=True)[0]
    assert [m["role"] for m in chat["prompt"]] == ["user"]
    assert chat["completion"][0]["content"] == "2+3=5. The answer is 5."
    raw = to_trl("sft", sft.examples, chat=False)[0]
    assert raw == {"prompt": _prompt(2, 3), "completion": "2+3=5. The answer is 5."}
    dpo = to_trl("rpo", pairs.examples, chat=True)[0]
    assert dpo["chosen"] == [{"role": "assistant", "content": "2+3=5. The answer is 5."}]
    assert to_trl("rpo", pairs.examples, chat=False)[0]["rejected"] == "The answer is 6."


def test_models_that_cannot_be_trained(tmp_path: Path) -> None:
    with pytest.raises(GvstoreError, match="does not exist"):
        spec_from_folder(tmp_path / "nowhere")
    missing = ModelSpec(name="x", source="local", path=str(tmp_path / "nowhere"))
    with pytest.raises(GvstoreError, match="does not exist"):
        trainable(missing, tmp_path)
    # The packaged GGUF, not prepared under this models dir: refused, with the fix.
    with pytest.raises(GvstoreError, match="gvstore prepare-model --model smollm2-135m-instruct"):
        trainable(SMOLLM2, tmp_path)
    gguf_only = tmp_path / "gguf"
    gguf_only.mkdir()
    (gguf_only / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(GvstoreError, match="no \\*.safetensors"):
        trainable(ModelSpec(name="g", source="local", path=str(gguf_only)), tmp_path)
    assert default_name(SMOLLM2) == "smollm2-135m-instruct-r1"
    assert default_name(msgspec.structs.replace(SMOLLM2, name="m-r3", round=3)) == "m-r4"


def test_stage_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "stages"))
    sys.modules.pop("finetune", None)
    import finetune as stage  # stages/finetune.py

    rc = stage.main(["--method", "sft", "--data", str(tmp_path / "none.jsonl"),
                     "--model-path", str(tmp_path), "--preset", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error: training file") and "\n" not in err
    rc = stage.main(["--method", "sft", "--data", str(write_sft(tmp_path / "s.jsonl")),
                     "--model-path", str(tmp_path / "nope"), "--preset", "cpu"])
    assert rc == 1 and "model folder" in capsys.readouterr().err


# ---- the real model ----------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: on a CPU shared with other work, two threads that spin waiting for
    each other make training several times slower. Restored for the tests after these."""
    try:
        import torch
    except ImportError:  # the model tests skip themselves (prepared_models)
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _parent(prepared_models: Path) -> ModelSpec:
    spec = spec_from_folder(prepared_models / SMOLLM2.name)
    assert (spec.name, spec.round, spec.kind, spec.family) == (SMOLLM2.name, 0, "instruct",
                                                                "smollm2")
    return spec


@pytest.fixture(scope="module")
def sft_round(prepared_models: Path, tmp_path_factory: pytest.TempPathFactory) \
        -> tuple[ModelSpec, FinetuneResult, Path]:
    work = tmp_path_factory.mktemp("finetune")
    parent = _parent(prepared_models)
    data = write_sft(work / "sft.jsonl")
    res = finetune("sft", data, parent, hparams=TINY, models_dir=work / "models")
    return parent, res, data


def _tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _check_moved(parent: Path, child: Path) -> None:
    import torch

    before, after = _tensors(parent), _tensors(child)
    names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
             "model.layers.29.mlp.down_proj.weight", "model.norm.weight"]
    for name in names:
        assert before[name].shape == after[name].shape
        assert not torch.equal(before[name], after[name]), f"{name} did not change"
        assert torch.isfinite(after[name]).all()


def _check_generations(spec: ModelSpec, digest: str, tmp_path: Path) -> None:
    from gvstore.backends import get_backend
    from gvstore.records import Generation, Sampling
    from gvstore.steps import generate
    from gvstore.store import Store
    from gvstore.tasks.registry import get_task

    task = get_task("arith")
    prompts = [task.prompt_record(it) for it in task.items()[:2]]
    store = Store(tmp_path / "store")
    gspec = generate.GenerateSpec(
        model=spec.name, model_digest=resolve(spec).digest, backend="transformers",
        sampling=Sampling(temperature=0.7, top_p=0.9, max_tokens=8), n=1, round=spec.round,
        batch_size=2)
    summary = generate.run(store, "gen", prompts, gspec,
                           lambda: get_backend("transformers", spec, batch_size=2))
    assert summary.made == 2
    gens = store.records(["generation"])
    assert len(gens) == 2
    for g in gens:
        assert isinstance(g, Generation)
        assert (g.model, g.model_digest, g.round) == (spec.name, digest, spec.round)
        assert 0 < g.n_tokens <= 8


def test_sft_round(sft_round: tuple[ModelSpec, FinetuneResult, Path], tmp_path: Path) -> None:
    parent, res, data = sft_round
    spec = res.spec
    assert res.trained and res.steps == TINY.steps and res.examples == 4
    assert len(res.losses) == TINY.steps and all(0 < x < 20 for x in res.losses)
    assert (spec.source, spec.round, spec.kind, spec.family, spec.flops) == \
        ("local", 1, "instruct", "smollm2", parent.flops)
    assert spec.name == "smollm2-135m-instruct-r1" and Path(spec.path) == res.path
    # The folder names its own weights, so the new model is told apart from its parent.
    manifest = json.loads((res.path / MANIFEST).read_text())
    assert res.digest == manifest["source_digest"] == folder_digest(res.path) \
        == resolve(spec).digest != resolve(parent).digest
    assert manifest["parent"]["digest"] == resolve(parent).digest
    assert manifest["method"] == "sft" and manifest["data"]["examples"] == 4
    assert manifest["data"]["format"] == "conversational prompt/completion"
    assert manifest["hyperparameters"] == msgspec.structs.asdict(TINY)
    assert not any(p.name.startswith(".") for p in res.path.parent.iterdir())  # no temp left
    _check_moved(Path(parent.path), res.path)
    # A folder read back gives the same spec (for the next round).
    assert spec_from_folder(res.path) == spec
    # The new model loads and its generations are recorded under its digest and round.
    from gvstore.models import load_hf

    tok, model = load_hf(resolve(spec))
    assert model.config.use_cache and tok.chat_template
    _check_generations(spec, res.digest, tmp_path)
    # Asking again trains nothing; other settings on the same folder are refused.
    again = finetune("sft", data, parent, res.path, hparams=TINY)
    assert not again.trained and again.digest == res.digest and again.spec == spec
    with pytest.raises(GvstoreError, match="exists and was made from another"):
        finetune("sft", data, parent, res.path, hparams=TINY.replace(seed=1))


def test_cli_finds_the_round_up_to_date(sft_round: tuple[ModelSpec, FinetuneResult, Path]) \
        -> None:
    from gvstore.cli.app import app

    parent, res, data = sft_round
    args = ["finetune", "--method", "sft", "--data", str(data), "--model-path", str(parent.path),
            "--out", str(res.path), "--preset", "cpu", "--steps", "3", "--batch-size", "2",
            "--micro-batch-size", "2", "--max-length", "256", "--json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert (got["trained"], got["digest"], got["round"]) == (False, res.digest, 1)
    bad = CliRunner().invoke(app, ["finetune", "--method", "dpo", "--data", str(data)])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ") and len(
        bad.stderr.splitlines()) == 1 and "unknown method" in bad.stderr, bad.output


def test_rpo_round_after_sft(sft_round: tuple[ModelSpec, FinetuneResult, Path],
                             tmp_path: Path) -> None:
    _, first, _ = sft_round
    parent = spec_from_folder(first.path)  # the SFT output, round 1
    data = write_pairs(tmp_path / "pairs.jsonl")
    res = finetune("rpo", data, parent, tmp_path / "rpo-r2", hparams=TINY, threads=1)
    spec = res.spec
    assert res.trained and res.steps == TINY.steps and len(res.losses) == TINY.steps
    assert (spec.name, spec.round) == ("rpo-r2", 2)
    manifest = json.loads((res.path / MANIFEST).read_text())
    assert manifest["parent"] == {"name": first.spec.name, "digest": first.digest, "round": 1,
                                  "path": str(first.path)}
    assert manifest["loss"].startswith("dpo sigmoid (beta=0.05) + 1.0 x nll")
    assert res.digest == resolve(spec).digest != first.digest
    _check_moved(first.path, res.path)
    _check_generations(spec, res.digest, tmp_path)


def test_base_model_trains_on_raw_text(prepared_models: Path, tmp_path: Path) -> None:
    parent = spec_from_folder(prepared_models / SMOLLM2.name, kind="base")
    data = write_sft(tmp_path / "sft.jsonl")
    res = finetune("sft", data, parent, tmp_path / "base-r1", hparams=TINY.replace(steps=1))
    manifest = json.loads((res.path / MANIFEST).read_text())
    assert (manifest["kind"], manifest["data"]["format"]) == ("base", "text prompt/completion")
    assert res.spec.kind == "base" and res.steps == 1 and res.digest != resolve(parent).digest


def test_examples_longer_than_max_length_are_a_one_line_error(prepared_models: Path,
                                                               tmp_path: Path) -> None:
    # trl drops every example that cannot fit; torch then failed with "num_samples=0".
    parent = spec_from_folder(prepared_models / SMOLLM2.name)
    data = write_sft(tmp_path / "sft.jsonl")
    out = tmp_path / "short-r1"
    with pytest.raises(GvstoreError, match=r"none of its 4 examples fits in max_length=16"):
        finetune("sft", data, parent, out, hparams=TINY.replace(max_length=16, steps=1))
    assert not out.exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folder left
