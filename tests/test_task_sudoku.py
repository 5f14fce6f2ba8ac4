"""Sudoku 4x4: the generator, the puzzles' uniqueness, the parser and the checker."""

from __future__ import annotations

import itertools

import pytest

from gvstore.tasks import get_task
from gvstore.tasks.sudoku import all_grids, check_grid, format_grid, grade_sudoku


def _valid(g: tuple[int, ...]) -> bool:
    """Independent check: rows, columns and boxes by index arithmetic."""
    rows = [g[r * 4 : r * 4 + 4] for r in range(4)]
    cols = [g[c::4] for c in range(4)]
    boxes = [[g[(br + r) * 4 + bc + c] for r in (0, 1) for c in (0, 1)]
             for br in (0, 2) for bc in (0, 2)]
    return all(sorted(u) == [1, 2, 3, 4] for u in rows + cols + boxes)


def _brute_solutions(puzzle: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every completion, by trying all 4x4 grids built from row permutations."""
    perms = list(itertools.permutations((1, 2, 3, 4)))
    rows_ok = [
        [p for p in perms if all(puzzle[r * 4 + c] in (0, p[c]) for c in range(4))]
        for r in range(4)
    ]
    out = []
    for rows in itertools.product(*rows_ok):
        g = tuple(x for row in rows for x in row)
        if _valid(g):
            out.append(g)
    return out


def test_exactly_288_distinct_valid_grids() -> None:
    grids = all_grids()
    assert len(grids) == 288 and len(set(grids)) == 288
    assert all(_valid(g) for g in grids)
    every = [tuple(x for row in rows for x in row)
             for rows in itertools.product(itertools.permutations((1, 2, 3, 4)), repeat=4)]
    assert {g for g in every if _valid(g)} == set(grids)


def test_every_puzzle_has_exactly_one_solution() -> None:
    items = get_task("sudoku").items()
    assert len(items) == 288 and len({it.question for it in items}) == 288
    for it in items:
        puzzle_s, solution_s = it.reference.split("|")
        puzzle = tuple(0 if c == "_" else int(c) for c in puzzle_s)
        sols = _brute_solutions(puzzle)
        assert sols == [tuple(int(c) for c in solution_s)], it.item_id
        assert it.question == format_grid(puzzle)


def test_generation_is_reproducible() -> None:
    a = [it.reference for it in get_task("sudoku").items()]
    b = [it.reference for it in get_task("sudoku").items()]
    assert a == b


REF = "_2_43_____4___21|1234341221434321"
SOLVED = "12 34\n34 12\n21 43\n43 21"


@pytest.mark.parametrize(("text", "strict", "flexible"), [
    (SOLVED, 1, 1),
    ("\n" + SOLVED + "\n\nPuzzle:\n12 34", 1, 1),
    ("Answer:\n" + SOLVED, 1, 1),
    ("1234\n3412\n2143\n4321", 0, 1),  # not in the ab cd format
    ("The grid is 1234 3412 2143 4321.", 0, 1),
    # one violated box: rows and columns hold 1-4, but the boxes do not
    ("12 34\n23 41\n34 12\n41 23", 0, 0),
    # a valid grid that changes a given (cell 2 is given as 2)
    ("21 43\n43 21\n12 34\n34 12", 0, 0),
    ("12 34\n34 12\n21 4_\n43 21", 0, 0),  # a blank left
    ("no grid here", 0, 0),
])
def test_grader_table(text: str, strict: int, flexible: int) -> None:
    got = grade_sudoku(text, REF)
    assert (got.strict, got.flexible) == (strict, flexible)


def test_checker_names_the_problem() -> None:
    bad_box = (1, 2, 3, 4, 2, 3, 4, 1, 3, 4, 1, 2, 4, 1, 2, 3)
    assert any("box" in p for p in check_grid(bad_box))
    assert not any("row" in p or "column" in p for p in check_grid(bad_box))
    good = (1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1)
    assert check_grid(good) == []
    puzzle = (2,) + (0,) * 15
    assert check_grid(good, puzzle) == ["givens changed at cells [0]"]


def test_prompt_format() -> None:
    task = get_task("sudoku")
    it = task.items()[0]
    text = task.render(it)
    assert text.endswith(f"Puzzle:\n{it.question}\nAnswer:")
    assert text.count("Puzzle:") == 3  # 2 shots + the question
    assert all(len(row) == 5 and row[2] == " " for row in it.question.splitlines())
