"""Names that become paths: one rule for all of them, and a guarded ``rmtree``.

Every name that gvstore turns into a path component (a model, a task, a method, a round
model, each part of a store folder, an export or model output folder's name) obeys one rule:
ASCII letters, digits, ``.``, ``_`` and ``-``; starting with a letter or a digit (so no hidden
files and no ``..``); no ``..`` anywhere; at most ``MAX_NAME`` characters. ``params.load``
checks every name of a params file with it, and the code that builds a path checks again
(``child``), so a name from a manifest, a command line option or a library caller cannot
reach outside the folder it belongs to either.

``safe_rmtree(target, owner_dir)`` is the only way gvstore removes a folder tree: it resolves
both paths (following symbolic links) and refuses anything that is not strictly inside the
folder that owns it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from gvstore.errors import GvstoreError

MAX_NAME = 100
"""The longest name (room for the ``.<name>.<pid>.tmp`` siblings under a 255-byte limit)."""

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)

RULE = (f"letters, digits, '.', '_' and '-', starting with a letter or digit, no '..', at most "
        f"{MAX_NAME} characters")
"""The rule in words, for error messages and docs."""


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a safe name (None: it is one)."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it is {len(name)} characters long, over the bound of {MAX_NAME}"
    if ".." in name:
        return "it contains '..'"
    if not _SAFE.fullmatch(name):
        return f"use only {RULE}"
    return None


def is_safe_name(name: object) -> bool:
    return name_problem(name) is None


def check_name(name: object, what: str, where: str = "") -> str:
    """``name`` if it is safe, else a one-line ``GvstoreError`` naming ``what`` (e.g. "model
    name") and ``where`` (e.g. "at $.models" or a file)."""
    problem = name_problem(name)
    if problem is not None:
        at = f" {where}" if where else ""
        kind = "file" if "file" in what else "folder"
        raise GvstoreError(f"{what} {_show(name)}{at} is not a usable {kind} name: {problem}")
    assert isinstance(name, str)
    return name


def check_folder(folder: object, what: str = "store folder", where: str = "") -> str:
    """A relative folder of safe names joined by ``/`` (``verify/mc-arith``)."""
    if not isinstance(folder, str) or not folder:
        return check_name(folder, what, where)
    for part in folder.split("/"):
        problem = name_problem(part)
        if problem is not None:
            at = f" {where}" if where else ""
            raise GvstoreError(f"{what} {_show(folder)}{at} is not a usable folder (a "
                               f"relative path like verify/mc): part {_show(part)}: {problem}")
    return folder


def child(root: Path | str, name: str, what: str) -> Path:
    """``root/name`` for a safe ``name`` (a ``GvstoreError`` naming ``what`` otherwise). The
    path may be a symbolic link that a user made on purpose: reading through it is fine, and
    ``safe_rmtree`` refuses to remove it."""
    return Path(root) / check_name(name, what)


def inside(path: Path | str, root: Path | str) -> bool:
    """Does ``path`` resolve (links followed) to somewhere strictly inside ``root``?"""
    p = Path(path).resolve()
    r = Path(root).resolve()
    return p != r and r in p.parents


def safe_rmtree(target: Path | str, owner_dir: Path | str, *, missing_ok: bool = True,
                ignore_errors: bool = False) -> None:
    """Remove the tree at ``target``, which must resolve strictly inside ``owner_dir``.

    Anything else (``owner_dir`` itself, a parent of it, a path that leaves it through
    ``..`` or a symbolic link, a symbolic link itself) is refused with a ``GvstoreError``
    before anything is removed.
    """
    t = Path(target)
    if t.is_symlink():
        raise GvstoreError(f"refusing to remove {t}: it is a symbolic link")
    if not inside(t, owner_dir):
        raise GvstoreError(f"refusing to remove {t} (resolves to {t.resolve()}): not strictly "
                           f"inside {Path(owner_dir).resolve()}, the folder it belongs to")
    if not t.exists():
        if missing_ok:
            return
        raise GvstoreError(f"cannot remove {t}: it does not exist")
    shutil.rmtree(t.resolve(), ignore_errors=ignore_errors)


def _show(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."
