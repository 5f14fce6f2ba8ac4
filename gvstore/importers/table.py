"""``gvstore import table``: a JSONL, CSV or Parquet table of samples, through a column mapping.

Two layouts, told apart per row by the sample column's value: a string is one sample (one row
per sample; its index is the ``sample_index`` column's value, else its rank among the rows of
its prompt, in file order), a list is every sample of the row's prompt (one row per prompt;
the correctness, flexible, extracted and score columns then hold lists of the same length).
CSV cells are strings, so a CSV file is always one row per sample. Every row is checked before
anything is written (``docs/import.md`` lists the rules); a bad row is an error naming the
file and its line (Parquet: its row), or, with ``skip_bad``, is left out and counted.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from gvstore.errors import GvstoreError
from gvstore.importers.common import ImportSummary, Sample, ScoreColumn, Source, plan, write
from gvstore.io import read_yaml, sha256_file
from gvstore.names import check_name
from gvstore.store import Store
from gvstore.verifiers.registry import get_method, names_where

DEFAULT_METHOD = "mc"
"""The method a score column is recorded under unless the mapping names another."""
DEFAULT_NAME = "imported"
"""The task and generator name unless given."""
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
MAPPING_KEYS = ("prompt_id", "prompt", "reference", "sample", "sample_index", "correct",
                "flexible", "extracted", "scores", "method", "task", "generator")
_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*",
                     re.ASCII)
_TRUE, _FALSE = ("true", "yes", "correct"), ("false", "no", "incorrect", "wrong")


@dataclass(frozen=True)
class Mapping:
    """Which column holds what (``None``: not in the table)."""

    prompt_id: str = "prompt_id"
    sample: str = "sample"
    prompt: str | None = None
    reference: str | None = None
    sample_index: str | None = None
    correct: str | None = None
    flexible: str | None = None
    extracted: str | None = None
    scores: tuple[ScoreColumn, ...] = ()
    task: str = DEFAULT_NAME
    generator: str = DEFAULT_NAME

    def check(self) -> None:
        """Names are safe (they become folders), methods give scores, no verifier and method
        twice."""
        check_name(self.task, "task name")
        check_name(self.generator, "generator name")
        allowed = names_where("sample", "loglik")
        seen: set[tuple[str, str]] = set()
        for s in self.scores:
            check_name(s.verifier, f"verifier name (score column {s.column!r})")
            if s.method not in allowed:
                raise GvstoreError(f"score column {s.column!r}: method {s.method!r} is not a "
                                   f"score method; choose from {', '.join(allowed)}")
            if (s.verifier, s.method) in seen:
                raise GvstoreError(f"verifier {s.verifier!r} with method {s.method!r} is "
                                   f"mapped twice")
            seen.add((s.verifier, s.method))


def score_option(text: str, method: str = DEFAULT_METHOD) -> ScoreColumn:
    """``NAME=COL`` (verifier NAME scores column COL) or ``COL`` (verifier COL)."""
    name, sep, col = text.partition("=")
    return ScoreColumn(name, method, col) if sep else ScoreColumn(text, method, text)


def mapping_from_yaml(path: Path | str) -> Mapping:
    """A mapping file: the keys of ``MAPPING_KEYS``; ``scores`` maps a verifier name to its
    column or to ``{column: COL, method: METHOD}``."""
    raw = read_yaml(path, "mapping file")
    if not isinstance(raw, dict):
        raise GvstoreError(f"mapping file {path}: expected a mapping of keys to columns")
    unknown = sorted(set(raw) - set(MAPPING_KEYS))
    if unknown:
        raise GvstoreError(f"mapping file {path}: unknown key {unknown[0]!r}; keys: "
                           f"{', '.join(MAPPING_KEYS)}")
    method = raw.pop("method", DEFAULT_METHOD)
    scores: list[ScoreColumn] = []
    for name, spec in (raw.pop("scores", None) or {}).items():
        if isinstance(spec, dict) and set(spec) <= {"column", "method"} and "column" in spec:
            scores.append(ScoreColumn(str(name), str(spec.get("method", method)),
                                      str(spec["column"])))
        elif isinstance(spec, str):
            scores.append(ScoreColumn(str(name), str(method), spec))
        else:
            raise GvstoreError(f"mapping file {path}: scores.{name}: expected a column name "
                               f"or {{column: ..., method: ...}}")
    for k, v in raw.items():
        if not isinstance(v, str):
            raise GvstoreError(f"mapping file {path}: {k}: expected a string")
    return Mapping(scores=tuple(scores), **raw)


def merge(base: Mapping, **over: Any) -> Mapping:
    """``base`` with the options given (not None) over it; ``scores`` replace its scores."""
    return replace(base, **{k: v for k, v in over.items() if v is not None})


class _Bad(Exception):
    """A bad row: the message (the caller adds where)."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rows_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any] | _Bad]]:
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                yield f"{path} line {n}", _Bad(f"not JSON: {exc}")
                continue
            yield f"{path} line {n}", row if isinstance(row, dict) else _Bad(
                f"expected a JSON object, got {type(row).__name__}")


def _rows_csv(path: Path) -> Iterator[tuple[str, dict[str, Any] | _Bad]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield f"{path} line {reader.line_num}", _Bad(f"bad CSV: {exc}")
                continue
            where = f"{path} line {reader.line_num}"
            if not cells:
                continue
            if len(cells) != len(header):
                yield where, _Bad(f"{len(cells)} fields, the header has {len(header)}")
                continue
            yield where, {h: (c if c != "" else None) for h, c in zip(header, cells, strict=True)}


def _rows_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any] | _Bad]]:
    import polars as pl

    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a file that is not Parquet
        raise GvstoreError(f"{path}: not a readable Parquet file: {exc}") from exc
    for n, row in enumerate(frame.iter_rows(named=True), 1):
        yield f"{path} row {n}", row


def rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | _Bad]]:
    """(where, row or what is wrong with it) of every row of a table file."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise GvstoreError(f"{path}: unknown table format; use a file ending in "
                           f"{', '.join(SUFFIXES)}")
    if not path.is_file():
        raise GvstoreError(f"{path}: no such file")
    try:
        reader = {"jsonl": _rows_jsonl, "csv": _rows_csv, "parquet": _rows_parquet}[kind]
        yield from reader(path)
    except UnicodeDecodeError as exc:
        raise GvstoreError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise GvstoreError(f"cannot read {path}: {exc.strerror}") from exc


def _col(row: dict[str, Any], col: str) -> Any:
    if col not in row:
        raise _Bad(f"no column {col!r}")
    v = row[col]
    return None if isinstance(v, float) and math.isnan(v) else v


def _number(v: Any, what: str) -> float | None:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float) or isinstance(v, str) and _NUMBER.fullmatch(v):
        x = float(v)
    elif isinstance(v, str) and v.strip().lower() in _TRUE + _FALSE:
        return 1.0 if v.strip().lower() in _TRUE else 0.0
    else:
        raise _Bad(f"{what}: expected a number, got {_show(v)}")
    if not math.isfinite(x):
        raise _Bad(f"{what}: {_show(v)} is not finite")
    return x


def _utility(v: Any, what: str) -> float | None:
    x = _number(v, what)
    if x is not None and not 0.0 <= x <= 1.0:
        raise _Bad(f"{what}: {_show(v)} is outside [0, 1]")
    return x


def _score(v: Any, col: ScoreColumn) -> float | None:
    if isinstance(v, bool) or (isinstance(v, str) and v and not _NUMBER.fullmatch(v)):
        raise _Bad(f"score column {col.column!r}: expected a number, got {_show(v)}")
    x = _number(v, f"score column {col.column!r}")
    rng = get_method(col.method).score_range
    if x is not None and rng is not None and not rng[0] <= x <= rng[1]:
        raise _Bad(f"score column {col.column!r}: {_show(v)} is outside the range "
                   f"[{rng[0]:g}, {rng[1]:g}] of method {col.method!r}")
    return x


def _text(v: Any, what: str, *, required: bool = False) -> str | None:
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise _Bad(f"{what}: expected a string, got {_show(v)}")
    return v


def _item(v: Any, col: str) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, str) and v.strip():
        return v
    raise _Bad(f"prompt id column {col!r}: expected a non-empty string or a whole number, "
               f"got {_show(v)}")


def _listed(row: dict[str, Any], col: str | None, n: int) -> list[Any]:
    """Column ``col`` of a one-row-per-prompt row: a list of ``n`` values (null: n nulls)."""
    if col is None:
        return [None] * n
    v = _col(row, col)
    if v is None:
        return [None] * n
    if not isinstance(v, list | tuple):
        raise _Bad(f"column {col!r}: expected a list (the sample column holds one), got "
                   f"{_show(v)}")
    if len(v) != n:
        raise _Bad(f"column {col!r}: {len(v)} values for {n} samples")
    return list(v)


@dataclass
class _State:
    """What the rows accepted so far hold: samples, and per prompt its text and first line."""

    samples: list[Sample] = field(default_factory=list)
    seen: dict[tuple[str, int], str] = field(default_factory=dict)
    prompts: dict[str, tuple[str | None, str | None, str]] = field(default_factory=dict)
    next_index: dict[str, int] = field(default_factory=dict)


def _row_samples(m: Mapping, row: dict[str, Any], where: str, st: _State) -> list[Sample]:
    """The samples of one row, checked against the rows before it (nothing is kept here)."""
    item = _item(_col(row, m.prompt_id), m.prompt_id)
    prompt = _text(_col(row, m.prompt), f"prompt column {m.prompt!r}") if m.prompt else None
    ref = (_text(_col(row, m.reference), f"reference column {m.reference!r}")
           if m.reference else None)
    if item in st.prompts and st.prompts[item][:2] != (prompt, ref):
        raise _Bad(f"prompt {_show(item)} has another text or reference than at "
                   f"{st.prompts[item][2]}")
    value = _col(row, m.sample)
    if isinstance(value, list | tuple):
        if m.sample_index is not None:
            raise _Bad("a row with a list of samples takes no sample_index column")
        texts = [_text(t, f"sample column {m.sample!r}", required=True) for t in value]
        n = len(texts)
        indices = list(range(n))
        correct, flexible, extracted = (_listed(row, c, n)
                                        for c in (m.correct, m.flexible, m.extracted))
        scores = [_listed(row, s.column, n) for s in m.scores]
    else:
        texts = [_text(value, f"sample column {m.sample!r}", required=True)]
        if m.sample_index is not None:
            i = _number(_col(row, m.sample_index), f"sample_index column {m.sample_index!r}")
            if i is None or i < 0 or not float(i).is_integer():
                raise _Bad(f"sample_index column {m.sample_index!r}: expected a whole number "
                           f">= 0, got {_show(row[m.sample_index])}")
            indices = [int(i)]
        else:
            indices = [st.next_index.get(item, 0)]
        correct, flexible, extracted = ([_col(row, c) if c else None]
                                        for c in (m.correct, m.flexible, m.extracted))
        scores = [[_col(row, s.column)] for s in m.scores]
    out = []
    for k, (text, i) in enumerate(zip(texts, indices, strict=True)):
        if (item, i) in st.seen:
            raise _Bad(f"sample {i} of prompt {_show(item)} is already at {st.seen[item, i]}")
        u = _utility(correct[k], f"correctness column {m.correct!r}")
        f = _utility(flexible[k], f"flexible column {m.flexible!r}")
        if f is not None and u is None:
            raise _Bad(f"flexible column {m.flexible!r}: a flexible grade needs a strict one")
        out.append(Sample(
            where=where, item_id=item, text=text or "", index=i, prompt=prompt, reference=ref,
            correct=u, flexible=f,
            extracted=_text(extracted[k], f"extracted column {m.extracted!r}"),
            scores=tuple(_score(col[k], s) for s, col in zip(m.scores, scores, strict=True))))
    return out


def _accept(st: _State, samples: list[Sample]) -> None:
    for s in samples:
        st.samples.append(s)
        st.seen[s.item_id, s.index] = s.where
        st.prompts.setdefault(s.item_id, (s.prompt, s.reference, s.where))
        st.next_index[s.item_id] = max(st.next_index.get(s.item_id, 0), s.index + 1)


def read_table(path: Path | str, mapping: Mapping, *, skip_bad: bool = False,
               ) -> tuple[list[Sample], int, list[str]]:
    """(samples, rows read, where each skipped row was) of a table file; a bad row is a
    ``GvstoreError`` naming its file and line unless ``skip_bad``."""
    mapping.check()
    st = _State()
    n_rows = 0
    skipped: list[str] = []
    for where, row in rows(Path(path)):
        n_rows += 1
        try:
            if isinstance(row, _Bad):
                raise row
            got = _row_samples(mapping, row, where, st)
        except _Bad as exc:
            if not skip_bad:
                raise GvstoreError(f"{where}: {exc}") from None
            skipped.append(where)
            continue
        _accept(st, got)
    return st.samples, n_rows, skipped


def import_table(store: Store, path: Path | str, mapping: Mapping, *,
                 skip_bad: bool = False) -> ImportSummary:
    """Read and check every row of ``path``, then add the records the store lacks (one
    segment; nothing at all if any row is bad and ``skip_bad`` is off)."""
    p = Path(path)
    samples, n_rows, skipped = read_table(p, mapping, skip_bad=skip_bad)
    if not samples:
        raise GvstoreError(f"{p}: no samples to import ({n_rows} rows, {len(skipped)} bad)")
    source = Source(path=p, digest="sha256:" + sha256_file(p), kind="table", task=mapping.task,
                    generator=mapping.generator)
    source.check()
    summary = ImportSummary(
        source=str(p), digest=source.digest, folder=source.folder, rows=n_rows,
        skipped=len(skipped), skipped_at=skipped[:20],
        prompts=len({s.item_id for s in samples}), samples=len(samples))
    write(store, source, plan(source, samples, mapping.scores), summary)
    return summary
