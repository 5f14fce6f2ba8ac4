"""Training settings of the finetune step: ``Hyperparams``, the presets and how a preset, a
config file and options combine (``build_hparams``).

This is what ``gvstore.params`` imports to check ``rounds.hyperparameters``: it imports only
msgspec and the standard library (torch only inside ``preset("auto")`` when asked, the YAML
reader only inside ``load_config``).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from gvstore.errors import GvstoreError

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
    from gvstore.io import read_yaml

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
