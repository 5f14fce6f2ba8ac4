"""Prompt selection (gvstore/tasks/select.py): `first` keeps the old meaning, `stratified` is a
seeded draw spread evenly over the task's strata, and the generate step and the rounds use the
same one."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
import yaml
from typer.testing import CliRunner

from gvstore.cli.app import app
from gvstore.errors import GvstoreError
from gvstore.params import Params, TaskEntry
from gvstore.tasks.base import GradeResult, Item, Task
from gvstore.tasks.registry import get_task
from gvstore.tasks.select import entry_items, select_items

REPO = Path(__file__).resolve().parents[1]
ARITH = get_task("arith")


def _draw(prompts: int | None, *, offset: int = 0, seed: int = 0,
          task: Task = ARITH) -> list[Item]:
    return entry_items(task, TaskEntry(prompts=prompts, offset=offset, select="stratified"), seed)


def _levels(items: list[Item]) -> dict[int, int]:
    return dict(sorted(Counter(it.meta["level"] for it in items).items()))


def test_first_is_the_old_slice() -> None:
    items = ARITH.items("test")
    got = entry_items(ARITH, TaskEntry(prompts=16, offset=3), 0)
    assert got == items[3:19]
    assert _levels(got) == {1: 16}  # the old default: level 1 only
    assert entry_items(ARITH, TaskEntry(offset=490), 0) == items[490:]
    assert TaskEntry().select == "first"


def test_stratified_counts_per_level() -> None:
    # 5 levels of 100: round-robin over the levels, the first levels take the remainder.
    assert _levels(_draw(48)) == {1: 10, 2: 10, 3: 10, 4: 9, 5: 9}
    assert _levels(_draw(10)) == {1: 2, 2: 2, 3: 2, 4: 2, 5: 2}
    assert _levels(_draw(7)) == {1: 2, 2: 2, 3: 1, 4: 1, 5: 1}
    assert len(_draw(None)) == 500 and len(_draw(500)) == 500


def test_stratified_is_deterministic_and_seeded() -> None:
    a, b = _draw(48), _draw(48)
    assert [i.item_id for i in a] == [i.item_id for i in b]
    other = _draw(48, seed=1)
    assert {i.item_id for i in other} != {i.item_id for i in a}
    assert _levels(other) == _levels(a)
    # a draw of level-1 items is not the first ones of the split
    assert [i.item_id for i in a if i.meta["level"] == 1] != [f"L1-{k:03d}" for k in range(10)]


def test_stratified_keeps_the_split_order_and_grows_by_prefix() -> None:
    split = [i.item_id for i in ARITH.items("test")]
    ids = [i.item_id for i in _draw(48)]
    assert ids == sorted(ids, key=split.index)
    assert {i.item_id for i in _draw(10)} < set(ids)  # a smaller draw is part of a larger one


def test_offset_gives_disjoint_balanced_draws() -> None:
    first, held = _draw(48), _draw(48, offset=48)
    assert not {i.item_id for i in first} & {i.item_id for i in held}
    # positions 48..95 of the order: levels 4 and 5 of turn 9, turns 10..18, level 1 of turn 19
    assert _levels(held) == {1: 10, 2: 9, 3: 9, 4: 10, 5: 10}
    assert _levels(first + held) == {1: 20, 2: 19, 3: 19, 4: 19, 5: 19}


def test_the_draw_is_pinned() -> None:
    # Record keys hold the prompts, so the draw of a seed must never change; these are what
    # the seed formula (digest.seed(base_seed, "select", task, split, stratum)) gives today.
    assert [i.item_id for i in _draw(5)] == PINNED


PINNED = ["L1-059", "L2-060", "L3-086", "L4-008", "L5-095"]


@pytest.mark.parametrize(("prompts", "offset"), [(501, 0), (48, 460), (1, 500)])
def test_a_draw_past_the_end_is_an_error(prompts: int, offset: int) -> None:
    with pytest.raises(GvstoreError, match="arith/test has 500 items; a stratified draw of"):
        _draw(prompts, offset=offset)


def test_first_past_the_end_is_cut_short_and_empty_is_an_error() -> None:
    assert len(entry_items(ARITH, TaskEntry(prompts=20, offset=490), 0)) == 10
    with pytest.raises(GvstoreError, match="no items of arith/test in that range"):
        entry_items(ARITH, TaskEntry(prompts=2, offset=500), 0)


def test_unknown_select_is_an_error() -> None:
    with pytest.raises(GvstoreError, match="select must be one of first, stratified"):
        select_items(ARITH, "test", ARITH.items("test"), select="random", prompts=3, offset=0,
                     seed=0)


class _Uneven(Task):
    """Two strata of 3 and 1 items."""

    name = "uneven"
    version = "1"
    stratum_key: ClassVar[str | None] = "s"

    def items(self, split: str = "test", path: Path | str | None = None) -> list[Item]:
        return [Item(f"{s}{i}", "q", "r", "test", {"s": s})
                for s, i in (("a", 0), ("b", 0), ("a", 1), ("a", 2))]

    def grade(self, text: str, reference: str) -> GradeResult:
        return GradeResult(0.0, 0.0, None)


def test_a_stratum_that_runs_out_is_skipped() -> None:
    task = _Uneven()
    # order: a?, b0, a?, a?: two items take one of each, three take b0 and two a's
    two = _draw(2, task=task)
    assert sorted(i.meta["s"] for i in two) == ["a", "b"]
    three = _draw(3, task=task)
    assert sorted(i.meta["s"] for i in three) == ["a", "a", "b"]
    assert {i.item_id for i in _draw(1, offset=3, task=task)} <= {"a0", "a1", "a2"}


def test_a_task_without_strata_is_a_seeded_sample() -> None:
    sudoku = get_task("sudoku")
    assert sudoku.stratum_key is None
    items = sudoku.items("test")
    a = _draw(4, task=sudoku)
    assert len(a) == 4 and a != items[:4]
    assert [i.item_id for i in a] == [i.item_id for i in _draw(4, task=sudoku)]
    assert a != _draw(4, task=sudoku, seed=1)


def _params(tasks: dict[str, Any], rounds: dict[str, Any] | None = None) -> Params:
    raw = {"study": {"models": [], "generators": [], "verifiers": [], "methods": [],
                     "tasks": list(tasks)}, "base": {"seed": 3},
           "tasks": tasks, "rounds": {"start": [], "steps": {}, **(rounds or {})}}
    return msgspec.convert(raw, Params)


def test_generate_step_and_rounds_select_the_same_prompts() -> None:
    from gvstore.records import seal
    from gvstore.steps.generate import task_prompts
    from gvstore.steps.rounds import prompt_set

    params = _params({"arith": {"prompts": 12, "select": "stratified"}})
    recs = task_prompts("arith", params.task("arith"), seed=params.base.seed)
    assert [p.item_id for p in recs] == [i.item_id for i in _draw(12, seed=3)]
    ps = prompt_set(params)
    assert ps.items == [p.item_id for p in recs]
    assert ps.prompt_ids == frozenset(seal(p).id for p in recs)


def _validate(tmp_path: Path, arith: dict[str, Any]) -> tuple[int, str]:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tasks"]["arith"] = arith
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = CliRunner().invoke(app, ["params", "validate", str(path)])
    return res.exit_code, res.stderr + res.stdout


def test_params_name_a_bad_select(tmp_path: Path) -> None:
    code, out = _validate(tmp_path, {"prompts": 8, "select": "random"})
    assert code == 1 and len(out.strip().splitlines()) == 1, out
    assert "$.tasks.arith.select" in out and "Traceback" not in out


def test_params_validate_refuses_a_stratified_draw_past_the_end(tmp_path: Path) -> None:
    code, out = _validate(tmp_path, {"prompts": 600, "select": "stratified"})
    assert code == 1 and len(out.strip().splitlines()) == 1, out
    assert "tasks.arith: arith/test has 500 items" in out
    code, out = _validate(tmp_path, {"prompts": 500, "select": "stratified"})
    assert code == 0, out
