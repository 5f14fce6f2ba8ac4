"""Converting a transformers model once for the ``ctranslate2`` back end, and its digest.

The converted folder is ``<models_dir>/<model name>.ct2-<compute type>/`` (for example
``data/models/smollm2-135m-instruct.ct2-int8/``), written whole or not at all
(``io.atomic_folder``) with a manifest ``gvstore-ct2.json`` naming the source model's digest,
the compute type, the ctranslate2 version and the converted files' digest. A folder whose
manifest names the same source digest, compute type and ctranslate2 version is current; any
other is converted again (a retrained round model, a new ctranslate2). The conversion is
deterministic (the same source gives the same bytes), so a deleted cache comes back identical.

The records of the back end carry ``record_digest``: a digest of the source model's digest and
the converted files' digest, so they never mix with another back end's or another
conversion's. A ``package`` (GGUF) model is first prepared (``models.prepare``, the same
safetensors folder ``prepare-model`` makes), because the converter reads transformers folders.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import ctranslate2

from gvstore.digest import PREFIX, digest
from gvstore.errors import GvstoreError
from gvstore.io import atomic_folder, sha256_file, write_atomic
from gvstore.models import DEFAULT_MODELS_DIR, ModelSpec, Resolved, prepare, resolve
from gvstore.names import child

CT2_MANIFEST = "gvstore-ct2.json"
COMPUTE_TYPES = ("int8", "float32")
"""Compute types a back-end name can select (``ctranslate2``: int8, ``ctranslate2-float32``)."""


@dataclass(frozen=True)
class Converted:
    """A converted model folder: where, what it came from, its files' digest."""

    path: Path
    source: Resolved
    compute_type: str
    files_digest: str
    converted_now: bool

    @property
    def record_digest(self) -> str:
        """The ``model_digest`` / ``verifier_digest`` of the back end's records."""
        return digest({"source": self.source.digest, "ctranslate2": self.files_digest})


def converted_dir(spec: ModelSpec, compute_type: str,
                  models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """``<models_dir>/<name>.ct2-<compute type>`` (a safe name, strictly inside models_dir)."""
    return child(models_dir, f"{spec.name}.ct2-{compute_type}", "model name")


def files_digest(folder: Path) -> str:
    """Digest of a converted folder's files (names and bytes, name order; manifest left out)."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != CT2_MANIFEST:
            h.update(p.name.encode() + b"\0" + (PREFIX + sha256_file(p)).encode() + b"\n")
    return PREFIX + h.hexdigest()


def _source(spec: ModelSpec, models_dir: Path) -> Resolved:
    resolved = resolve(spec, models_dir)
    if resolved.gguf_file is not None:  # the converter reads transformers folders
        prepare(spec, models_dir)
        resolved = resolve(spec, models_dir)
    return resolved


def _current(out: Path, source_digest: str, compute_type: str) -> str | None:
    """The files digest a current converted folder's manifest names, else None."""
    try:
        m = json.loads((out / CT2_MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (isinstance(m, dict) and m.get("source_digest") == source_digest
            and m.get("compute_type") == compute_type
            and m.get("ctranslate2") == ctranslate2.__version__
            and isinstance(m.get("files_digest"), str)):
        return str(m["files_digest"])
    return None


def convert(spec: ModelSpec, compute_type: str = "int8",
            models_dir: Path = DEFAULT_MODELS_DIR, *, force: bool = False) -> Converted:
    """The model converted for ctranslate2 with ``compute_type`` weights, converting it now if
    its folder is missing or not current (a few seconds for a 135M model)."""
    if compute_type not in COMPUTE_TYPES:
        raise GvstoreError(f"ctranslate2 compute type must be one of {', '.join(COMPUTE_TYPES)},"
                           f" got {compute_type!r}")
    out = converted_dir(spec, compute_type, models_dir)
    source = _source(spec, models_dir)
    known = None if force else _current(out, source.digest, compute_type)
    if known is not None:
        return Converted(out, source, compute_type, known, False)
    start = time.monotonic()
    with atomic_folder(out) as tmp:
        _run_converter(source, tmp, compute_type)
        fd = files_digest(tmp)
        write_atomic(tmp / CT2_MANIFEST, json.dumps({
            "name": spec.name, "source_digest": source.digest, "source_path": str(source.path),
            "compute_type": compute_type, "ctranslate2": ctranslate2.__version__,
            "files_digest": fd, "seconds": round(time.monotonic() - start, 2),
        }, indent=2) + "\n")
    return Converted(out, source, compute_type, fd, True)


def _run_converter(source: Resolved, tmp: Path, compute_type: str) -> None:
    from ctranslate2.converters import TransformersConverter
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    revision = source.spec.revision if source.spec.source == "hub" and source.spec.revision \
        else None
    try:
        TransformersConverter(str(source.path), revision=revision).convert(
            str(tmp), quantization=compute_type, force=True)
    except (OSError, ValueError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GvstoreError(f"cannot convert model {source.spec.name!r} from {source.path} for "
                           f"ctranslate2: {first}") from exc


def record_digest(spec: ModelSpec, models_dir: Path, compute_type: str) -> str:
    """The digest the back end's records carry (converts the model first if needed)."""
    return convert(spec, compute_type, models_dir).record_digest
