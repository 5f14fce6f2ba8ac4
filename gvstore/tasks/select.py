"""Which items of a task's split become the prompts of a study: the one selection rule, used by
the generate step (``steps.generate.task_prompts``) and the rounds (``steps.rounds.prompt_set``).

A task table entry (``params.TaskEntry``) says ``select``:

* ``first`` (the default): the items ``offset .. offset + prompts - 1`` of the split, in the
  split's order (all of them after ``offset`` when ``prompts`` is null). A range past the end
  is cut short; an empty range is an error.
* ``stratified``: a seeded draw spread evenly over the task's strata (``Task.stratum_key``,
  e.g. arith's difficulty ``level``; a task without strata is one stratum, so the draw is a
  seeded sample). Each stratum's items are shuffled with their own seed,
  ``digest.seed(base_seed, "select", task, split, stratum)``, and the strata are interleaved
  round-robin (in the order they first appear in the split) into one *stratified order*:
  the first item of every stratum, then the second of every stratum, and so on (a stratum
  that runs out is skipped). The selection is the items ``offset .. offset + prompts - 1`` of
  that order, returned in the split's order. So any selection holds each stratum's count to
  within one of the others' (while no stratum has run out), the first strata of the split
  take the remainder, and two selections with the same seed and the ranges ``[0, 48)`` and
  ``[48, 96)`` are disjoint (held-out prompts). ``prompts`` null takes the whole order after
  ``offset``; a range past the end is an error (a stratified draw is never silently smaller).

The draw depends only on the base seed, the task's name, the split and the items' ids and
strata, never on the machine or the order of a dict.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Literal

from gvstore.digest import seed as derive_seed
from gvstore.errors import GvstoreError

if TYPE_CHECKING:
    from gvstore.params import TaskEntry
    from gvstore.tasks.base import Item, Task

Select = Literal["first", "stratified"]
SELECTS: tuple[str, ...] = ("first", "stratified")


def strata(task: Task, items: list[Item]) -> dict[str, list[int]]:
    """The positions of ``items`` per stratum, strata in the order they first appear (one
    stratum ``""`` for a task without ``stratum_key``)."""
    key = task.stratum_key
    out: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        s = "" if key is None else str(it.meta.get(key, ""))
        out.setdefault(s, []).append(i)
    return out


def stratified_order(task: Task, split: str, items: list[Item], seed: int) -> list[int]:
    """The positions of ``items`` in the seeded stratified order (see the module's text)."""
    lanes = []
    for s, pos in strata(task, items).items():
        lane = list(pos)
        random.Random(derive_seed(seed, "select", task.name, split, s)).shuffle(lane)
        lanes.append(lane)
    order: list[int] = []
    depth = max((len(lane) for lane in lanes), default=0)
    for j in range(depth):
        order += [lane[j] for lane in lanes if j < len(lane)]
    return order


def select_items(task: Task, split: str, items: list[Item], *, select: str,
                 prompts: int | None, offset: int, seed: int) -> list[Item]:
    """The items a task entry selects from ``items`` (the split's, in its order)."""
    where = f"{task.name}/{split}"
    if select == "first":
        stop = offset + prompts if prompts is not None else None
        picked = items[offset:stop]
        if not picked:
            raise GvstoreError(f"no items of {where} in that range (offset {offset} of "
                               f"{len(items)} items)")
        return picked
    if select != "stratified":
        raise GvstoreError(f"select must be one of {', '.join(SELECTS)}, got {select!r}")
    want = len(items) - offset if prompts is None else prompts
    if offset + want > len(items) or want <= 0:
        raise GvstoreError(f"{where} has {len(items)} items; a stratified draw of "
                           f"{prompts if prompts is not None else 'all'} prompts after offset "
                           f"{offset} needs {offset + max(want, 1)}")
    chosen = sorted(stratified_order(task, split, items, seed)[offset:offset + want])
    return [items[i] for i in chosen]


def entry_items(task: Task, entry: TaskEntry, seed: int) -> list[Item]:
    """The items of a task table entry (split, select, prompts, offset): the split checked,
    then ``select_items`` with the base seed ``seed``."""
    task.check_split(entry.split)
    return select_items(task, entry.split, task.items(entry.split), select=entry.select,
                        prompts=entry.prompts, offset=entry.offset, seed=seed)
