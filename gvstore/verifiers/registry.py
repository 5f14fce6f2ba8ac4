"""The verification methods by name: the one list every consumer reads.

The built-in methods (``mc``, ``cot_binary``, ``cot_score``, ``tournament``, in that order:
the order of help and error texts) are registered the first time the registry is used. A new
method is one module that declares a ``Method`` (see ``gvstore.verifiers.base``) and passes
it to ``register``; params validation, filter specs, the simulator and the verify step then
accept it.
"""

from __future__ import annotations

from gvstore.errors import GvstoreError
from gvstore.verifiers.base import Method

_METHODS: dict[str, Method] = {}
_BUILTIN: list[str] = []


def _load() -> None:
    if _BUILTIN:
        return
    from gvstore.verifiers import cot_binary, cot_score, mc, tournament

    for module in (mc, cot_binary, cot_score, tournament):
        method = module.METHOD
        method.check()
        _METHODS[method.name] = method
        _BUILTIN.append(method.name)


def register(method: Method) -> Method:
    """Add ``method`` after those registered before it; a name may be registered once."""
    _load()
    method.check()
    if method.name in _METHODS:
        raise GvstoreError(f"verification method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method ``register`` added (a built-in one stays)."""
    _load()
    if name in _BUILTIN:
        raise GvstoreError(f"{name!r} is a built-in verification method")
    _METHODS.pop(name, None)


def method_names() -> tuple[str, ...]:
    """Every registered method's name, in registration order."""
    _load()
    return tuple(_METHODS)


def is_method(name: str) -> bool:
    """Whether ``name`` is a registered method."""
    _load()
    return name in _METHODS


def get_method(name: str) -> Method:
    """The method called ``name``; an unknown name is a one-line error listing the known."""
    _load()
    try:
        return _METHODS[name]
    except KeyError:
        raise GvstoreError(f"unknown verification method {name!r}; "
                           f"choose from {', '.join(_METHODS)}") from None


def names_where(*calls: str) -> tuple[str, ...]:
    """The names of the methods whose call kind is one of ``calls``, in order."""
    _load()
    return tuple(n for n, m in _METHODS.items() if m.call in calls)


def names_text() -> str:
    """The method names as a sentence lists them: ``mc, cot_binary, cot_score or tournament``."""
    names = method_names()
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
