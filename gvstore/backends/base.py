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
}


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
    target, extra = entry
    module_name, factory_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" (install the `{extra}` extra)" if extra else ""
        raise GvstoreError(f"back end {name!r} is not installed: {exc}{hint}") from exc
    factory = getattr(module, factory_name)
    backend: Backend = factory(model, **options)
    return backend
