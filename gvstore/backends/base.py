"""The back-end interface: prompts in, samples and log-likelihoods out.

A back end is built for one model (a ``ModelSpec``) and answers two kinds of request:

* ``sample``: for each ``SampleRequest`` (prompt text, sampling parameters, seed) one sample
  with its token count and finish reason (``"stop"``: end of sequence or a stop string;
  ``"length"``: ``max_tokens`` reached);
* ``loglik``: for each ``LoglikRequest`` (prompt text, continuation) the summed log-probability
  of the continuation's tokens after the prompt, and its token count.

The prompt text is the user's message: an instruct model gets it through its chat template
(with the assistant turn opened), a base model gets it raw. Either way the back end, not the
caller, renders it, so records hold the task's text and the model setting decides the rest.

Back ends are registered by name and imported only when asked for, so ``import gvstore`` never
imports torch or vllm.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from gvstore.errors import GvstoreError
from gvstore.records import Sampling

if TYPE_CHECKING:
    from gvstore.models import ModelSpec


@dataclass(frozen=True)
class SampleRequest:
    prompt: str
    sampling: Sampling
    seed: int


@dataclass(frozen=True)
class Sample:
    text: str
    n_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class LoglikRequest:
    prompt: str
    continuation: str


class Backend(Protocol):
    """What every back end provides. ``name`` is recorded in the records it produces."""

    name: str
    model: ModelSpec

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        """One sample per request, in order."""
        ...

    def loglik(self, requests: Sequence[LoglikRequest]) -> list[tuple[float, int]]:
        """(sum of log-probabilities, token count) of each continuation, in order."""
        ...

    def close(self) -> None:
        """Free the model (GPU memory, server connections)."""
        ...


# name -> ("module:factory", the extra that installs it); the module is imported only when the
# back end is asked for. This is the one list of back ends (params validation reads it too).
_REGISTRY: dict[str, tuple[str, str]] = {
    "transformers": ("gvstore.backends.hf:TransformersBackend", "cpu"),
    "vllm": ("gvstore.backends.vllm_backend:VllmBackend", "gpu"),
    "openai": ("gvstore.backends.http:OpenAIBackend", ""),
    "ctranslate2": ("gvstore.backends.ct2:int8", "cpu"),
    "ctranslate2-float32": ("gvstore.backends.ct2:float32", "cpu"),
}

# Back ends that run converted weights: name -> compute type of ``backends/ct2_convert.py``.
# Their records carry the conversion's digest (``model_digest`` below), not the source's.
_CONVERTED: dict[str, str] = {"ctranslate2": "int8", "ctranslate2-float32": "float32"}


def available() -> list[str]:
    """Registered back-end names, sorted."""
    return sorted(_REGISTRY)


def names() -> tuple[str, ...]:
    """Registered back-end names in registration order (how messages list them)."""
    return tuple(_REGISTRY)


def get_backend(name: str, model: ModelSpec, **options: object) -> Backend:
    """Build the back end ``name`` for ``model`` (imports its module now)."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise GvstoreError(f"unknown back end {name!r}; choose from {', '.join(available())}")
    target = entry[0]
    module_name, factory_name = target.split(":")
    module = import_for(name, module_name)
    factory = getattr(module, factory_name)
    backend: Backend = factory(model, **options)
    return backend


def converting() -> dict[str, str]:
    """The back ends that run converted weights: name -> compute type."""
    return dict(_CONVERTED)


def import_for(name: str, module_name: str) -> ModuleType:
    """Import a module of back end ``name``; a missing package is a one-line error naming the
    extra that installs it."""
    extra = _REGISTRY[name][1]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" (install the `{extra}` extra)" if extra else ""
        raise GvstoreError(f"back end {name!r} is not installed: {exc}{hint}") from exc


def model_digest(name: str, model: ModelSpec, models_dir: Path) -> str:
    """The model digest the records of back end ``name`` carry for ``model``: the weights'
    digest (``models.resolve``), or for a back end that runs converted weights the digest of
    the conversion (the model is converted now if it is not yet)."""
    compute = _CONVERTED.get(name)
    if compute is None:
        from gvstore.models import resolve

        return resolve(model, models_dir).digest
    convert_mod = import_for(name, "gvstore.backends.ct2_convert")
    digest: str = convert_mod.record_digest(model, models_dir, compute)
    return digest
