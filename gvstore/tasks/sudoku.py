"""4x4 Sudoku, generated in code: every valid grid (288), one puzzle per grid.

A grid is 16 digits, row by row. Prompts write each row as two pairs, one per 2x2 box, with
``_`` for a blank (``1_ _4``): the space shows the box boundary, and ``_`` is a token no digit
can be confused with. The parser also reads ``0`` or ``.`` as a blank, which then makes the
answer incomplete and wrong.

Puzzles: for grid i (in lexicographic order), a seeded shuffle of the 16 cells, and cells are
blanked one by one while the puzzle keeps exactly one solution, up to ``max_blanks``.

The reference is ``<puzzle>|<solution>`` (16 characters each, ``_`` for blanks). An answer is
right when it is a valid grid (rows, columns and boxes each hold 1-4 once) that keeps every
given; with a unique solution that is the solution.

* strict: the first four non-empty lines after the last ``Answer:`` (or from the start) are
  rows in the ``ab cd`` format and form a right answer;
* flexible: the first 16 digits 1-4 after the last ``Answer:`` (any layout) form a right answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

from gvstore.tasks.base import Exemplar, GradeResult, Item, Task

Grid = tuple[int, ...]
UNITS: tuple[tuple[int, ...], ...] = (
    tuple(tuple(r * 4 + c for c in range(4)) for r in range(4))
    + tuple(tuple(r * 4 + c for r in range(4)) for c in range(4))
    + tuple(
        tuple((br + r) * 4 + bc + c for r in range(2) for c in range(2))
        for br in (0, 2) for bc in (0, 2)
    )
)
_ROW_RE = re.compile(r"^\s*([1-4_0.]{2}) ([1-4_0.]{2})\s*$")


def _candidates(cells: list[int], i: int) -> list[int]:
    used = {cells[j] for unit in UNITS if i in unit for j in unit}
    return [d for d in (1, 2, 3, 4) if d not in used]


def _solve(cells: list[int], limit: int) -> Iterator[Grid]:
    try:
        i = cells.index(0)
    except ValueError:
        yield tuple(cells)
        return
    for d in _candidates(cells, i):
        cells[i] = d
        yield from _solve(cells, limit)
        cells[i] = 0


def solutions(puzzle: Sequence[int], limit: int = 2) -> list[Grid]:
    """Up to ``limit`` completions of ``puzzle`` (0 = blank)."""
    out: list[Grid] = []
    for g in _solve(list(puzzle), limit):
        out.append(g)
        if len(out) >= limit:
            break
    return out


@cache
def all_grids() -> tuple[Grid, ...]:
    """Every valid 4x4 Sudoku grid, in lexicographic order (there are 288)."""
    return tuple(_solve([0] * 16, 10**6))


def make_puzzle(grid: Grid, rng: random.Random, max_blanks: int = 10) -> Grid:
    """Blank cells of ``grid`` in a random order while the solution stays unique."""
    cells = list(grid)
    order = list(range(16))
    rng.shuffle(order)
    blanks = 0
    for i in order:
        if blanks >= max_blanks:
            break
        keep = cells[i]
        cells[i] = 0
        if len(solutions(cells, 2)) == 1:
            blanks += 1
        else:
            cells[i] = keep
    return tuple(cells)


def format_grid(cells: Sequence[int]) -> str:
    """Four rows ``ab cd``, ``_`` for blanks."""
    ch = ["_" if c == 0 else str(c) for c in cells]
    return "\n".join(
        f"{ch[r * 4]}{ch[r * 4 + 1]} {ch[r * 4 + 2]}{ch[r * 4 + 3]}" for r in range(4)
    )


def _flat(cells: Sequence[int]) -> str:
    return "".join("_" if c == 0 else str(c) for c in cells)


def _unflat(s: str) -> Grid:
    return tuple(0 if c in "_0." else int(c) for c in s)


def check_grid(grid: Sequence[int], puzzle: Sequence[int] | None = None) -> list[str]:
    """What is wrong with ``grid`` as a solution of ``puzzle`` (empty list: nothing)."""
    problems: list[str] = []
    if len(grid) != 16:
        return [f"{len(grid)} cells, not 16"]
    if any(c not in (1, 2, 3, 4) for c in grid):
        problems.append("blank or invalid cells")
    names = [f"row {i + 1}" for i in range(4)] + [f"column {i + 1}" for i in range(4)]
    names += [f"box {i + 1}" for i in range(4)]
    for name, unit in zip(names, UNITS, strict=True):
        if sorted(grid[i] for i in unit) != [1, 2, 3, 4]:
            problems.append(f"{name} does not hold 1-4 once")
    if puzzle is not None:
        changed = [i for i in range(16) if puzzle[i] and puzzle[i] != grid[i]]
        if changed:
            problems.append(f"givens changed at cells {changed}")
    return problems


def _answer_region(text: str) -> str:
    at = text.rfind("Answer:")
    return text[at + len("Answer:"):] if at >= 0 else text


def parse_strict(text: str) -> Grid | None:
    """The grid in the required format (four ``ab cd`` rows), or None."""
    lines = [ln for ln in _answer_region(text).splitlines() if ln.strip()][:4]
    rows = [_ROW_RE.match(ln) for ln in lines]
    if len(rows) < 4 or any(m is None for m in rows):
        return None
    return _unflat("".join(m.group(1) + m.group(2) for m in rows if m is not None))


def parse_flexible(text: str) -> Grid | None:
    """The first 16 digits 1-4 of the answer, in any layout, or None."""
    digits: list[int] = []
    for c in _answer_region(text):
        if c in "1234":
            digits.append(int(c))
            if len(digits) == 16:
                return tuple(digits)
    return None


def grade_sudoku(text: str, reference: str) -> GradeResult:
    puzzle_s, _, _solution = reference.partition("|")
    puzzle = _unflat(puzzle_s)
    strict = parse_strict(text)
    flexible = parse_flexible(text)
    s_ok = strict is not None and not check_grid(strict, puzzle)
    f_ok = flexible is not None and not check_grid(flexible, puzzle)
    shown = strict if strict is not None else flexible
    return GradeResult(float(s_ok), float(f_ok), None if shown is None else _flat(shown))


class Sudoku(Task):
    name = "sudoku"
    version = "1"
    description = "4x4 Sudoku, all 288 grids, one uniquely solvable puzzle each (generated)"
    default_kshot = 2
    seed = 0
    max_blanks = 10
    instruction = (
        "Solve the 4x4 Sudoku. Fill every blank (_) with a digit from 1 to 4 so that each "
        "row, each column and each 2x2 box holds 1, 2, 3 and 4 exactly once. Each row is "
        "written as two pairs of cells, one pair per 2x2 box. Keep the given digits and "
        "write the solved grid in the same format after 'Answer:'."
    )
    question_format = "Puzzle:\n{question}\nAnswer:"
    shot_format = "Puzzle:\n{question}\nAnswer:\n{answer}"

    def items(self, split: str = "test", path: Path | str | None = None) -> list[Item]:
        self.check_split(split)
        return list(_items(self.seed, self.max_blanks))

    def exemplars(self) -> Sequence[Exemplar]:
        rng = random.Random(f"sudoku-exemplars:{self.seed}")
        grids = all_grids()
        out = []
        for _ in range(3):
            g = grids[rng.randrange(len(grids))]
            out.append(Exemplar(format_grid(make_puzzle(g, rng, self.max_blanks)),
                                format_grid(g)))
        return out

    def grade(self, text: str, reference: str) -> GradeResult:
        return grade_sudoku(text, reference)


@cache
def _items(seed: int, max_blanks: int) -> tuple[Item, ...]:
    out = []
    for i, g in enumerate(all_grids()):
        rng = random.Random(f"sudoku:{seed}:{i}")
        p = make_puzzle(g, rng, max_blanks)
        out.append(Item(f"sudoku-{i:03d}", format_grid(p), f"{_flat(p)}|{_flat(g)}", "test",
                        {"blanks": p.count(0)}))
    return tuple(out)
