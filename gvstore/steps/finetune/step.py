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

Importing this module is cheap: torch, transformers, trl and datasets load when training starts
(``gvstore.steps.finetune.runner``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from msgspec import UNSET

from gvstore.errors import GvstoreError
from gvstore.io import atomic_folder
from gvstore.models import (
    DEFAULT_MODELS_DIR,
    DataRef,
    Manifest,
    ModelSpec,
    ParentRef,
    Resolved,
    default_name,
    folder_digest,
    read_manifest,
    trainable,
    write_manifest,
)
from gvstore.names import check_name
from gvstore.steps.finetune.config import Hyperparams, preset
from gvstore.steps.finetune.data import TrainingData, load_data


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


def _known(value: Any) -> Any:
    return None if value is UNSET else value


def _up_to_date(out: Path, request: dict[str, Any]) -> Manifest | None:
    m = read_manifest(out) if out.is_dir() else None
    if m is None:
        return None
    parent, data = _known(m.parent), _known(m.data)
    have = {"method": _known(m.method),
            "parent_digest": parent.digest if parent is not None else None,
            "kind": _known(m.kind), "data_digest": data.digest if data is not None else None,
            "hyperparameters": _known(m.hyperparameters)}
    return m if have == request else None


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
            new_spec, out, str(manifest.source_digest), method, parent.name,
            resolved.digest, len(data.examples), int(_known(manifest.steps) or 0),
            _known(manifest.loss_first), _known(manifest.loss_last), 0.0, trained=False,
            losses=list(_known(manifest.losses) or []))
    if out.exists() and not force:
        raise GvstoreError(f"{out} exists and was made from another model, data or settings; "
                           "give another output folder or --force to replace it")
    return _train_into(out, new_spec, parent, resolved, data, hp, request,
                       verbose=verbose, threads=threads)


def _train_into(out: Path, spec: ModelSpec, parent: ModelSpec, resolved: Resolved,
                data: TrainingData, hp: Hyperparams, request: dict[str, Any], *,
                verbose: bool, threads: int | None) -> FinetuneResult:
    """Train into a temporary folder, write its manifest, and put it at ``out``."""
    from gvstore.steps.finetune.runner import train

    start = time.monotonic()
    with atomic_folder(out) as tmp:
        run = train(request["method"], resolved, data, hp, tmp, verbose=verbose,
                    threads=threads)
        digest = folder_digest(tmp)
        losses = run["losses"]
        write_manifest(tmp, Manifest(
            name=spec.name, source="finetune", kind=spec.kind, family=spec.family,
            flops=spec.flops, round=spec.round, source_digest=digest, weights_digest=digest,
            parent=ParentRef(name=parent.name, digest=resolved.digest, round=parent.round,
                             path=str(resolved.path)),
            method=request["method"], loss=_loss_name(request["method"], hp),
            hyperparameters=request["hyperparameters"],
            data=DataRef(path=str(data.path), digest=data.digest,
                         examples=len(data.examples), format=run["format"]),
            steps=run["steps"], loss_first=losses[0] if losses else None,
            loss_last=losses[-1] if losses else None, losses=losses,
            seconds=round(time.monotonic() - start, 2),
            train_seconds=round(run["seconds"], 2), device=run["device"],
            threads=run["threads"], precision=run["precision"], versions=run["versions"]))
    return FinetuneResult(spec, out, digest, request["method"], parent.name, resolved.digest,
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
