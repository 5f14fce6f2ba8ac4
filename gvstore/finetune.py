"""The finetune step: distil filtered answers back into the model (the paper's section 5).

Two updates, both with trl, both starting from a safetensors model folder:

* ``sft`` (rejection sampling): supervised fine-tuning on a ``gvstore export sft`` file, the
  kept (prompt, answer) pairs. The loss is on the answer tokens only: instruct models get
  conversational prompt/completion examples (the chat template renders them exactly as the
  ``transformers`` back end renders prompts), base models raw prompt/completion text.
* ``rpo`` (the RL update of appendix F): DPO on a ``gvstore export pairs`` file plus an NLL
  term on the chosen answer. trl 1.x dropped ``rpo_alpha``; the same loss is
  ``DPOConfig(loss_type=["sigmoid", "sft"], loss_weights=[1.0, sft_weight])``.

The result is a new model folder written under a temporary name and renamed, holding the
weights, the tokenizer and a ``gvstore-model.json`` manifest. Its ``source_digest`` is the
digest of the new weight files, so a ``local`` ModelSpec pointing there resolves to it and the
model's later records are told apart from its parent's. The manifest also says where the model
came from (parent, method, hyperparameters, data digest, loss): a folder whose manifest matches
a request is up to date, and asking again trains nothing.

Importing this module is cheap: torch, transformers, trl and datasets load when training starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from gvstore.digest import PREFIX
from gvstore.errors import GvstoreError
from gvstore.models import (
    BUILTIN,
    DEFAULT_MODELS_DIR,
    MANIFEST,
    ModelSpec,
    Resolved,
    folder_digest,
    read_manifest,
    resolve,
)
from gvstore.names import check_name, safe_rmtree

Method = Literal["sft", "rpo"]
METHODS: tuple[str, ...] = typing.get_args(Method)
PresetName = Literal["auto", "paper", "cpu"]
PRESETS: tuple[str, ...] = typing.get_args(PresetName)


def _h(description: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, **constraints)


class Hyperparams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Training settings. The defaults are the paper's (appendix F); see ``CPU`` for the small
    preset. Parse a mapping with ``Hyperparams.from_mapping`` so that typos and out-of-range
    values are errors with a path. Every number has finite bounds (far past what training
    needs: ``inf``, ``nan`` and absurd sizes are refused before anything loads)."""

    steps: Annotated[int, _h(
        "Optimizer steps (the paper: 2000). The training set is cycled through as often as "
        "needed; each step sees batch_size examples.", ge=1, le=10_000_000)] = 2000
    batch_size: Annotated[int, _h(
        "Examples (SFT) or pairs (RPO) per optimizer step (the paper: 64). Must be a multiple "
        "of micro_batch_size; the quotient is the number of gradient-accumulation passes.",
        ge=1, le=1_000_000)] = 64
    micro_batch_size: Annotated[int, _h(
        "Examples per forward/backward pass. Lower it to save memory; the optimizer still sees "
        "batch_size examples per step.", ge=1, le=1_000_000)] = 8
    learning_rate: Annotated[float, _h(
        "Peak AdamW learning rate (the paper: 1e-6).", gt=0, le=1)] = 1e-6
    lr_scheduler: Annotated[Literal["linear", "cosine", "constant", "constant_with_warmup"], _h(
        "Learning-rate schedule after warm-up (transformers' names; not a setting the paper "
        "states).")] = "linear"
    warmup_steps: Annotated[int, _h("Steps of linear warm-up from 0 to learning_rate.",
                                    ge=0, le=10_000_000)] = 0
    weight_decay: Annotated[float, _h("AdamW weight decay.", ge=0, le=100)] = 0.0
    max_grad_norm: Annotated[float, _h("Gradient clipping norm (0: no clipping).",
                                       ge=0, le=1e6)] = 1.0
    max_length: Annotated[int, _h(
        "Longest tokenised sequence, prompt plus answer (the paper: 2048); longer ones are cut "
        "at the end.", ge=8, le=10_000_000)] = 2048
    beta: Annotated[float, _h(
        "RPO only: DPO's beta, how far the policy may move from the reference (the paper: "
        "0.05; higher stays closer).", gt=0, le=1_000)] = 0.05
    sft_weight: Annotated[float, _h(
        "RPO only: weight of the NLL term on the chosen answer, RPO's alpha (the paper: 1; "
        "0 gives plain DPO).", ge=0, le=1_000)] = 1.0
    precision: Annotated[Literal["auto", "bf16", "fp32"], _h(
        "auto: bf16 mixed precision on a GPU that has it, else fp32. A CPU always trains in "
        "fp32 (bf16 there is several times slower without bf16 instructions).")] = "auto"
    gradient_checkpointing: Annotated[bool, _h(
        "Recompute activations in the backward pass: less memory, about 20% slower.")] = True
    seed: Annotated[int, _h("Seed of the weights' RNG and the data order.", ge=0,
                            le=2**63 - 1)] = 0

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str = "hyperparameters") -> Hyperparams:
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            msg = str(exc)
            if where.startswith("rounds."):  # a key path of params (rounds.hyperparameters)
                msg = msg.replace("`$", f"`$.{where}", 1)
            raise GvstoreError(f"{where}: {msg}") from None

    def replace(self, **changes: Any) -> Hyperparams:
        """A copy with the given fields changed (``None`` values are ignored), validated."""
        data = msgspec.structs.asdict(self)
        data.update({k: v for k, v in changes.items() if v is not None})
        return Hyperparams.from_mapping(data)

    def check(self) -> None:
        if self.batch_size % self.micro_batch_size:
            raise GvstoreError(f"batch_size {self.batch_size} is not a multiple of "
                               f"micro_batch_size {self.micro_batch_size}")

    @property
    def accumulation(self) -> int:
        return self.batch_size // self.micro_batch_size


PAPER = Hyperparams()
"""The paper's settings (appendix F): batch 64, lr 1e-6, AdamW, 2000 steps, length 2048."""

CPU = Hyperparams(steps=8, batch_size=4, micro_batch_size=2, max_length=512,
                  precision="fp32", gradient_checkpointing=False)
"""Scaled down for a CPU: a few small steps, short sequences, the paper's optimizer settings.
It shows the loop works end to end; it is not expected to improve the model."""


def help_texts() -> dict[str, str]:
    """Each hyperparameter's help text, by field name (for CLIs and docs)."""
    hints = typing.get_type_hints(Hyperparams, include_extras=True)
    out: dict[str, str] = {}
    for name, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, msgspec.Meta) and meta.description:
                out[name] = meta.description
    return out


def preset(name: str, *, cuda: bool | None = None) -> Hyperparams:
    """``paper``, ``cpu``, or ``auto`` (paper on a CUDA machine, cpu elsewhere)."""
    if name not in PRESETS:
        raise GvstoreError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    if name == "auto":
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        name = "paper" if cuda else "cpu"
    return PAPER if name == "paper" else CPU


def load_config(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping of hyperparameters (checked by ``Hyperparams.from_mapping``)."""
    from gvstore.params import read_yaml

    raw = read_yaml(path, "hyperparameter config")  # strict: UTF-8, no duplicate keys
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GvstoreError(f"{path}: expected a mapping of hyperparameters")
    Hyperparams.from_mapping(raw, where=str(path))  # fail early, with the path
    return raw


def build_hparams(preset_name: str, config: Path | None = None, *, cuda: bool | None = None,
                  where: str = "hyperparameters", **overrides: Any) -> Hyperparams:
    """A preset, then a config file's values over it, then ``overrides`` (``None``: keep).
    ``cuda`` decides the ``auto`` preset (None: ask torch)."""
    hp = preset(preset_name, cuda=cuda)
    if config is not None:
        merged = msgspec.structs.asdict(hp) | load_config(config)
        hp = Hyperparams.from_mapping(merged, where=str(config))
    data = msgspec.structs.asdict(hp)
    data.update({k: v for k, v in overrides.items() if v is not None})
    hp = Hyperparams.from_mapping(data, where=where)
    try:
        hp.check()
    except GvstoreError as exc:
        raise GvstoreError(f"{where}: {exc}") from None
    return hp


# ---- training data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingData:
    """Examples read from an export file, checked line by line."""

    path: Path
    digest: str
    examples: list[dict[str, Any]]
    """sft: ``{"messages": [...]}`` (user ... assistant); rpo: ``{"prompt", "chosen",
    "rejected"}`` strings."""


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return PREFIX + h.hexdigest()


def _messages(line: dict[str, Any]) -> list[dict[str, str]] | str:
    """The conversation of an SFT line, or why it is not one."""
    if "messages" in line:
        msgs = line["messages"]
    elif "prompt" in line and "completion" in line:
        msgs = [{"role": "user", "content": line["prompt"]},
                {"role": "assistant", "content": line["completion"]}]
    else:
        return "expected a 'messages' list (gvstore export sft) or 'prompt' and 'completion'"
    if not isinstance(msgs, list) or len(msgs) < 2:
        return "'messages' must list at least a user and an assistant message"
    out = []
    for i, m in enumerate(msgs):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):
            return f"message {i} needs string 'role' and 'content'"
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "assistant" or not out[-1]["content"].strip():
        return "the last message must be a non-empty assistant answer"
    if not any(m["role"] == "user" for m in out[:-1]):
        return "no user message before the answer"
    return out


def _pair(line: dict[str, Any]) -> dict[str, str] | str:
    missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(line.get(k), str)]
    if missing:
        return (f"expected string fields prompt, chosen, rejected (gvstore export pairs); "
                f"missing or not a string: {', '.join(missing)}")
    if not line["chosen"].strip():
        return "empty chosen answer"
    return {"prompt": line["prompt"], "chosen": line["chosen"], "rejected": line["rejected"]}


def load_data(method: str, path: Path) -> TrainingData:
    """Read and check a training file: ``sft`` lines or ``rpo`` pairs. Blank lines are
    allowed; any other line that is not a valid example is an error naming its number."""
    if method not in METHODS:
        raise GvstoreError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    path = Path(path)
    if not path.is_file():
        raise GvstoreError(f"training file {path} does not exist (write one with "
                           f"`gvstore export {'sft' if method == 'sft' else 'pairs'}`)")
    examples: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for n, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError as exc:
                raise GvstoreError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(line, dict):
                raise GvstoreError(f"{path}:{n}: expected a JSON object")
            ex: dict[str, Any] | str
            if method == "sft":
                got = _messages(line)
                ex = {"messages": got} if isinstance(got, list) else got
            else:
                ex = _pair(line)
            if isinstance(ex, str):
                raise GvstoreError(f"{path}:{n}: {ex}")
            examples.append(ex)
    if not examples:
        raise GvstoreError(f"training file {path} holds no examples (did the filter keep "
                           "nothing?)")
    return TrainingData(path, _file_digest(path), examples)


def to_trl(method: str, examples: list[dict[str, Any]], *, chat: bool) -> list[dict[str, Any]]:
    """Examples in trl's formats. ``chat``: conversational prompt/completion (SFT) or
    prompt/chosen/rejected (DPO) message lists, rendered by the chat template; else raw text,
    the prompt as the back end sends it to a base model."""
    out: list[dict[str, Any]] = []
    for ex in examples:
        if method == "sft":
            msgs = ex["messages"]
            if chat:
                out.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
            else:
                out.append({"prompt": "\n\n".join(m["content"] for m in msgs[:-1]),
                            "completion": msgs[-1]["content"]})
        elif chat:
            out.append({"prompt": [{"role": "user", "content": ex["prompt"]}],
                        "chosen": [{"role": "assistant", "content": ex["chosen"]}],
                        "rejected": [{"role": "assistant", "content": ex["rejected"]}]})
        else:
            out.append(dict(ex))
    return out


# ---- models ------------------------------------------------------------------------------------


def spec_from_folder(path: Path, *, kind: Literal["instruct", "base"] | None = None) -> ModelSpec:
    """A ``local`` ModelSpec for a model folder, with name, round, kind, family and FLOPs from
    its manifest (a finetune output or a prepared built-in model) where it has them."""
    path = Path(path)
    if not path.is_dir():
        raise GvstoreError(f"model folder {path} does not exist")
    manifest = read_manifest(path) or {}
    named = manifest.get("name")
    if named is not None:  # a manifest's name becomes output folder names: the safe-name rule
        check_name(named, "model name", f"in {path / MANIFEST}")
    name = named if isinstance(named, str) and named else path.name
    base = BUILTIN.get(name)
    values: dict[str, Any] = {
        "kind": base.kind if base else "instruct", "family": base.family if base else "",
        "flops": base.flops if base else None, "round": 0,
    }
    for key in values:
        if key in manifest:
            values[key] = manifest[key]
    if kind is not None:
        values["kind"] = kind
    try:
        return msgspec.convert({"name": name, "source": "local", "path": str(path), **values},
                               ModelSpec)
    except msgspec.ValidationError as exc:
        raise GvstoreError(f"model manifest {path / MANIFEST}: {exc}") from None


def parent_spec(model: str, model_path: Path | None, models_dir: Path = DEFAULT_MODELS_DIR,
                base: bool = False) -> ModelSpec:
    """The model to train: a folder (its manifest gives name and round), or a built-in model,
    which must have been prepared (converted from GGUF) under ``models_dir``."""
    from gvstore.models import builtin, prepared_dir

    if model_path is not None:
        return spec_from_folder(model_path, kind="base" if base else None)
    spec = builtin(model)
    if read_manifest(prepared_dir(spec, models_dir)) is None:
        raise GvstoreError(f"model {spec.name!r} is not prepared under {models_dir}; run "
                           f"`gvstore prepare-model --model {spec.name} --models-dir "
                           f"{models_dir}` first (or give --model-path)")
    return msgspec.structs.replace(spec, kind="base") if base else spec


def trainable(parent: ModelSpec, models_dir: Path = DEFAULT_MODELS_DIR) -> Resolved:
    """Where to load ``parent`` from for training: a transformers folder (or a hub id), never
    a GGUF file (trl refuses GGUF-quantised models; prepare-model converts them once)."""
    resolved = resolve(parent, models_dir)
    if resolved.gguf_file is not None:
        raise GvstoreError(
            f"model {parent.name!r} is a GGUF file; convert it once with `gvstore prepare-model "
            f"--model {parent.name} --models-dir {models_dir}` and train from that folder")
    weights = [*resolved.path.glob("*.safetensors"), *resolved.path.glob("*.bin")]
    if parent.source != "hub" and not weights:
        raise GvstoreError(f"model folder {resolved.path} has no *.safetensors or *.bin "
                           "weights (a GGUF folder? convert it with prepare-model)")
    return resolved


def default_name(parent: ModelSpec) -> str:
    """``<parent without -rN>-r<parent round + 1>``, e.g. smollm2-135m-instruct-r1."""
    stem = re.sub(r"-r\d+$", "", parent.name)
    return f"{stem}-r{parent.round + 1}"


# ---- the step ----------------------------------------------------------------------------------


@dataclass
class FinetuneResult:
    """What a finetune call made (or found up to date)."""

    spec: ModelSpec
    path: Path
    digest: str
    method: str
    parent: str
    parent_digest: str
    examples: int
    steps: int
    loss_first: float | None
    loss_last: float | None
    seconds: float
    trained: bool
    """False where the folder was already up to date."""
    losses: list[float] = field(default_factory=list)

    @property
    def steps_per_s(self) -> float | None:
        return round(self.steps / self.seconds, 4) if self.trained and self.seconds else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.spec.name, "path": str(self.path), "digest": self.digest,
            "round": self.spec.round, "method": self.method, "parent": self.parent,
            "parent_digest": self.parent_digest, "examples": self.examples,
            "steps": self.steps, "loss_first": self.loss_first, "loss_last": self.loss_last,
            "seconds": round(self.seconds, 2), "steps_per_s": self.steps_per_s,
            "trained": self.trained,
        }


def _request(method: str, parent: Resolved, data: TrainingData,
             hp: Hyperparams) -> dict[str, Any]:
    """What determines the trained weights; a folder whose manifest holds the same is current.
    (``kind`` decides between chat-template and raw-text examples.)"""
    return {"method": method, "parent_digest": parent.digest, "kind": parent.spec.kind,
            "data_digest": data.digest, "hyperparameters": msgspec.structs.asdict(hp)}


def _up_to_date(out: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None:
        return None
    have = {"method": manifest.get("method"),
            "parent_digest": (manifest.get("parent") or {}).get("digest"),
            "kind": manifest.get("kind"), "data_digest": (manifest.get("data") or {}).get("digest"),
            "hyperparameters": manifest.get("hyperparameters")}
    return manifest if have == request else None


def finetune(
    method: str,
    data_path: Path,
    parent: ModelSpec,
    out: Path | None = None,
    *,
    hparams: Hyperparams | None = None,
    name: str | None = None,
    models_dir: Path = DEFAULT_MODELS_DIR,
    force: bool = False,
    verbose: bool = False,
    threads: int | None = None,
) -> FinetuneResult:
    """Train ``parent`` on an export file with ``method`` (sft or rpo); write the new model.

    ``out`` defaults to ``models_dir/<name>``, ``name`` to ``default_name(parent)``. An ``out``
    whose manifest records the same request (parent digest, method, data digest,
    hyperparameters) is returned as it is; another existing ``out`` is an error unless
    ``force``. Returns the new model as a ``local`` ModelSpec one round after ``parent``.
    ``threads`` caps torch's CPU threads while training (on a CPU shared with other work, 1
    can be several times faster than spinning threads that wait for each other).
    """
    if out is not None:  # names first: they become folders
        check_name(Path(out).name, "output folder name", f"(--out {out})")
    name = check_name(name or (Path(out).name if out is not None else default_name(parent)),
                      "model name")
    out = Path(out) if out is not None else Path(models_dir) / name
    hp = hparams if hparams is not None else preset("auto")
    hp.check()
    data = load_data(method, data_path)
    resolved = trainable(parent, models_dir)
    new_spec = ModelSpec(name=name, source="local", path=str(out), kind=parent.kind,
                         family=parent.family, flops=parent.flops, round=parent.round + 1)
    request = _request(method, resolved, data, hp)
    manifest = _up_to_date(out, request)
    if manifest is not None and not force:
        return FinetuneResult(
            new_spec, out, str(manifest["source_digest"]), method, parent.name,
            resolved.digest, len(data.examples), int(manifest.get("steps", 0)),
            manifest.get("loss_first"), manifest.get("loss_last"), 0.0, trained=False,
            losses=list(manifest.get("losses", [])))
    if out.exists() and not force:
        raise GvstoreError(f"{out} exists and was made from another model, data or settings; "
                           "give another output folder or --force to replace it")

    start = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    safe_rmtree(tmp, out.parent)
    try:
        run = _train(method, resolved, data, hp, tmp, verbose=verbose, threads=threads)
        digest = folder_digest(tmp)
        seconds = time.monotonic() - start
        (tmp / MANIFEST).write_text(json.dumps({
            "name": name, "source": "finetune", "kind": new_spec.kind,
            "family": new_spec.family, "flops": new_spec.flops, "round": new_spec.round,
            "source_digest": digest, "weights_digest": digest,
            "parent": {"name": parent.name, "digest": resolved.digest, "round": parent.round,
                       "path": str(resolved.path)},
            "method": method, "loss": _loss_name(method, hp),
            "hyperparameters": request["hyperparameters"],
            "data": {"path": str(data.path), "digest": data.digest,
                     "examples": len(data.examples), "format": run["format"]},
            "steps": run["steps"], "loss_first": run["losses"][0] if run["losses"] else None,
            "loss_last": run["losses"][-1] if run["losses"] else None,
            "losses": run["losses"], "seconds": round(seconds, 2),
            "train_seconds": round(run["seconds"], 2), "device": run["device"],
            "threads": run["threads"],
            "precision": run["precision"], "versions": run["versions"],
        }, indent=2) + "\n")
        _swap(tmp, out)
    finally:
        safe_rmtree(tmp, out.parent, ignore_errors=True)
    losses = run["losses"]
    return FinetuneResult(new_spec, out, digest, method, parent.name, resolved.digest,
                          len(data.examples), run["steps"], losses[0] if losses else None,
                          losses[-1] if losses else None, time.monotonic() - start,
                          trained=True, losses=losses)


def summary_line(res: FinetuneResult) -> str:
    """One line for logs: what was trained, how fast, where it went."""
    from gvstore.digest import short

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    if not res.trained:
        return (f"finetune {res.method}: {res.path} is up to date ({res.spec.name}, round "
                f"{res.spec.round}, digest {short(res.digest)})")
    return (f"finetune {res.method}: {res.parent} -> {res.spec.name} (round {res.spec.round}); "
            f"{res.steps} steps on {res.examples} examples, loss {f(res.loss_first)} -> "
            f"{f(res.loss_last)}, {res.seconds:.1f} s ({f(res.steps_per_s)} steps/s); "
            f"{res.path} digest {short(res.digest)}")


def _loss_name(method: str, hp: Hyperparams) -> str:
    if method == "sft":
        return "nll on answer tokens"
    return f"dpo sigmoid (beta={hp.beta}) + {hp.sft_weight} x nll on chosen answer tokens"


def _swap(tmp: Path, out: Path) -> None:
    """Put ``tmp`` at ``out``; an old ``out`` is moved aside first and removed after."""
    old = out.parent / f".{out.name}.{os.getpid()}.old"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    safe_rmtree(old, out.parent, ignore_errors=True)


def _train(method: str, resolved: Resolved, data: TrainingData, hp: Hyperparams, tmp: Path,
           *, verbose: bool, threads: int | None = None) -> dict[str, Any]:
    """Run trl and save the trained model and tokenizer into ``tmp``."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            if not verbose:  # trl calls a transformers API that transformers 5 renamed
                warnings.filterwarnings("ignore", category=FutureWarning,
                                        message=".*is_gradient_checkpointing.*")
            return _run_trl(method, resolved, data, hp, tmp, verbose=verbose)
    finally:
        torch.set_num_threads(before)


def _run_trl(method: str, resolved: Resolved, data: TrainingData, hp: Hyperparams, tmp: Path,
             *, verbose: bool) -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    import trl
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    from gvstore.models import load_hf

    cuda = torch.cuda.is_available()
    bf16 = cuda and hp.precision != "fp32" and torch.cuda.is_bf16_supported()
    if hp.precision == "bf16" and cuda and not bf16:
        raise GvstoreError("precision bf16: this GPU has no bf16; use precision fp32")
    device = "cuda" if cuda else "cpu"
    transformers.set_seed(hp.seed)
    tok, model = load_hf(resolved, "float32", "cpu")  # the trainer moves it to its device
    chat = resolved.spec.kind == "instruct" and bool(tok.chat_template)
    rows = to_trl(method, data.examples, chat=chat)

    progress_was_on = datasets.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    if not verbose:
        datasets.disable_progress_bars()
        hf_logging.set_verbosity_error()
    try:
        with tempfile.TemporaryDirectory(prefix="gvstore-trainer-") as scratch:
            common: dict[str, Any] = dict(
                output_dir=scratch, max_steps=hp.steps,
                per_device_train_batch_size=hp.micro_batch_size,
                gradient_accumulation_steps=hp.accumulation, learning_rate=hp.learning_rate,
                lr_scheduler_type=hp.lr_scheduler, warmup_steps=hp.warmup_steps,
                weight_decay=hp.weight_decay, max_grad_norm=hp.max_grad_norm,
                optim="adamw_torch", max_length=hp.max_length, bf16=bf16, fp16=False,
                use_cpu=not cuda,
                seed=hp.seed, data_seed=hp.seed, report_to=[], save_strategy="no",
                logging_strategy="steps", logging_steps=1, disable_tqdm=not verbose,
                log_level="info" if verbose else "error", dataloader_num_workers=0,
            )
            # transformers 5 renamed gradient_checkpointing (the old name warns).
            fields = transformers.TrainingArguments.__dataclass_fields__
            ckpt = "activation_checkpointing" if "activation_checkpointing" in fields \
                else "gradient_checkpointing"
            common[ckpt] = hp.gradient_checkpointing
            dataset = datasets.Dataset.from_list(rows)
            trainer: Any
            if method == "sft":
                sft_args = trl.SFTConfig(**common, completion_only_loss=True)
                trainer = trl.SFTTrainer(model=model, args=sft_args, train_dataset=dataset,
                                         processing_class=tok)
            else:
                dpo_args = trl.DPOConfig(**common, beta=hp.beta,
                                         loss_type=["sigmoid", "sft"],
                                         loss_weights=[1.0, hp.sft_weight])
                trainer = trl.DPOTrainer(model=model, args=dpo_args, train_dataset=dataset,
                                         processing_class=tok)
            kept = len(trainer.train_dataset)
            if kept == 0:  # trl drops what cannot fit; torch would fail with num_samples=0
                raise GvstoreError(
                    f"{data.path}: none of its {len(rows)} examples fits in max_length="
                    f"{hp.max_length} tokens once tokenized; raise max_length or shorten "
                    "the prompts")
            if not verbose:
                trainer.remove_callback(PrinterCallback)  # disable_tqdm would print each log
            t0 = time.monotonic()
            trainer.train()
            seconds = time.monotonic() - t0
            losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
            trained = trainer.accelerator.unwrap_model(trainer.model)
            trained.config.use_cache = True  # gradient checkpointing turns it off
            trained.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            steps = int(trainer.state.global_step)
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress_was_on and not verbose:
            datasets.enable_progress_bars()
    return {
        "steps": steps, "losses": [round(x, 6) for x in losses], "seconds": seconds,
        "device": device, "precision": "bf16" if bf16 else "fp32",
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "format": ("conversational" if chat else "text") + (
            " prompt/completion" if method == "sft" else " prompt/chosen/rejected"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__},
    }
