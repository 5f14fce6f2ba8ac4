"""``store verify`` (and ``--fix``): re-check a whole store and repair what can be repaired.

``verify`` re-checks every segment's digest, every record's key and id, each folder's journal
against its segments, and the digests of the projection caches and of the group caches kept
beside them (``gvstore.analysis.groupcache``; the same manifests), and returns a
``VerifyReport``.
``fix=True`` then tidies each folder under its lock (see ``Store.verify``). Reading a store
does not come here: reads check only what they read (``gvstore.store``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gvstore import compact_intent, journal, lock
from gvstore import projcache as _projcache
from gvstore.errors import DamagedSegment, GvstoreError
from gvstore.records import check, decoder
from gvstore.segments import TMP_SUFFIX, io_error, read_segment, recover

if TYPE_CHECKING:
    from gvstore.store import Store


@dataclass
class VerifyReport:
    """What ``Store.verify`` found. ``ok`` is False if anything is damaged.

    Damage: ``damaged_segments`` (bytes do not match the name, not zstd, unreadable),
    ``missing_segments`` (journalled, not on disk), ``bad_records``, ``damaged_journals`` and
    ``damaged_cache``. Notes (not damage): ``leftover_tmp`` (temporary files of killed
    writers), ``unjournalled`` (segments a journal does not list yet), ``no_journal`` (folders
    from before journals), ``torn_journals``, ``unlisted_cache``, ``compactions`` (folders
    with an interrupted compaction, finished or undone by the next writer or ``--fix``; the
    segments its intent names are not counted as unjournalled). A compaction intent that does
    not parse is a damaged journal. ``fixed``: what ``fix=True`` did.
    """

    segments: int = 0
    records: int = 0
    duplicates: int = 0
    damaged_segments: list[tuple[str, str]] = field(default_factory=list)
    missing_segments: list[tuple[str, str]] = field(default_factory=list)
    bad_records: list[tuple[str, int, str]] = field(default_factory=list)
    damaged_journals: list[tuple[str, str]] = field(default_factory=list)
    damaged_cache: list[tuple[str, str]] = field(default_factory=list)
    cache_files: int = 0
    leftover_tmp: list[str] = field(default_factory=list)
    unjournalled: list[str] = field(default_factory=list)
    no_journal: list[str] = field(default_factory=list)
    torn_journals: list[str] = field(default_factory=list)
    unlisted_cache: list[str] = field(default_factory=list)
    compactions: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.damaged_segments or self.missing_segments or self.bad_records
                    or self.damaged_journals or self.damaged_cache)


def verify(store: Store, *, fix: bool = False) -> VerifyReport:
    """The report of ``Store.verify`` (see there), fixing what it found if ``fix``."""
    rep = VerifyReport()
    rep.leftover_tmp = [str(p) for p in store.leftover_tmp()]
    _check_journals(store, rep)
    _check_segments(store, rep)
    caches = [(d, _projcache.check(d)) for d in _projcache.cache_dirs(store.root)]
    for _, crep in caches:
        rep.cache_files += crep.checked
        rep.damaged_cache.extend(crep.damaged)
        rep.unlisted_cache.extend(crep.unlisted)
        rep.leftover_tmp.extend(crep.stale_tmp)
    if fix:
        rep.fixed = [line for fj in store.journals() for line in _fix_folder(fj)]
        for d, crep in caches:
            try:
                rep.fixed.extend(_projcache.fix(d, crep))
            except OSError as exc:
                raise io_error(exc, d, "clean the projection cache") from exc
    return rep


def _check_journals(store: Store, rep: VerifyReport) -> None:
    for fj in store.journals():
        if fj.journal is None:
            rep.no_journal.append(str(fj.folder))
            continue
        for _, reason in fj.journal.bad_lines:
            rep.damaged_journals.append((str(fj.journal.path), reason))
        if fj.journal.torn:
            rep.torn_journals.append(str(fj.journal.path))
        rep.missing_segments.extend(
            (str(fj.folder / n), str(fj.journal.path)) for n in fj.missing)
        named = _intent_names(fj.folder, rep)
        rep.unjournalled.extend(str(fj.folder / n) for n in fj.unjournalled if n not in named)


def _intent_names(folder: Path, rep: VerifyReport) -> set[str]:
    """The segments an interrupted compaction of ``folder`` names (noted in ``rep``)."""
    try:
        intent = compact_intent.read_intent(folder)
    except GvstoreError as exc:
        rep.damaged_journals.append((str(compact_intent.intent_path(folder)), str(exc)))
        return set()
    if intent is None:
        return set()
    rep.compactions.append(str(folder))
    return set(intent.old) | ({intent.new} if intent.new else set())


def _check_segments(store: Store, rep: VerifyReport) -> None:
    seen: set[str] = set()
    for path in store.segments():
        rep.segments += 1
        try:
            data = read_segment(path)
        except DamagedSegment as exc:
            rep.damaged_segments.append((str(path), exc.reason))
            continue
        for lineno, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = decoder.decode(line)
            except msgspec.DecodeError as exc:
                rep.bad_records.append((str(path), lineno, f"does not decode: {exc}"))
                continue
            rep.records += 1
            problem = check(rec)
            if problem is not None:
                rep.bad_records.append((str(path), lineno, problem))
            if rec.id in seen:
                rep.duplicates += 1
            seen.add(rec.id)


def _fix_folder(fj: journal.FolderJournal) -> list[str]:
    """Tidy one folder under its lock; what was done, one line each."""
    folder = fj.folder
    try:
        fresh = lock.acquire(folder)
    except OSError as exc:
        raise io_error(exc, folder, "lock the store folder") from exc
    done: list[str] = []
    try:
        before = set(os.listdir(folder))
        had = fj.journal
        named: set[str] = set()
        if fresh:
            done.extend(_drop_bad_intent(folder))
            named = _intent_names(folder, VerifyReport())
            settled = recover(folder)  # .part files, compaction, torn line, adoption
            journal.sync(folder)
            done.extend([settled] if settled else [])
        after = set(os.listdir(folder))
        done.extend(f"removed temporary file {folder / n}" for n in sorted(before - after)
                    if n.endswith(TMP_SUFFIX))
        if had is None and fj.present:
            done.append(f"created journal {journal.journal_path(folder)} "
                        f"({len(fj.present)} segments)")
        else:
            done.extend(f"journalled {folder / n}" for n in fj.unjournalled if n not in named)
            if had is not None and had.torn:
                done.append(f"cut the torn last line of {had.path}")
        done.extend(_forget_missing(folder, fj.present))
    except OSError as exc:
        raise io_error(exc, folder, "fix the store folder") from exc
    finally:
        lock.release(folder)
    return done


def _drop_bad_intent(folder: Path) -> list[str]:
    """Delete a compaction intent that does not parse (nothing was deleted on its word; every
    segment it may have named is still there and is adopted)."""
    try:
        compact_intent.read_intent(folder)
    except GvstoreError:
        compact_intent.intent_path(folder).unlink(missing_ok=True)
        return [f"deleted damaged compaction intent {compact_intent.intent_path(folder)}"]
    return []


def _forget_missing(folder: Path, present: set[str]) -> list[str]:
    """Rewrite the journal without missing segments and bad lines; what was done."""
    j = journal.read_journal(folder)
    if j is None or not (j.bad_lines or any(n not in present for n in j.names)):
        return []
    gone = [n for n in j.names if n not in present]
    journal.rewrite(folder, [n for n in j.names if n in present])
    done = [f"forgot missing segment {folder / n} (its records are lost; "
            "rerun the stage to recompute them)" for n in gone]
    if j.bad_lines:
        done.append(f"rewrote {j.path} without its bad lines")
    return done
