"""``gvstore import inspect``: Inspect AI eval logs (``.eval`` and ``.json``), by scorer.

Each log is read with ``inspect_ai.log.read_eval_log`` (the optional extra ``inspect``; the
import happens here, inside a function). Each sample of the log's dataset is a prompt
(``sample.id`` its item id, its input the prompt text, its target the reference), each epoch
a sample index (epoch 1 is index 0), ``output.completion`` the generation text. One scorer's
values are the grades (``grade``); the other scorers' values become verifications, one
verifier per scorer, with its ``explanation`` as the verification's raw output.

A sample Inspect logged with an error is left out and counted (Inspect does not score it
either). A sample the grade scorer did not score is left out and counted. A sample without
model output (its solver never called the model, or a limit stopped it first) is imported
with an empty text and its scores, as Inspect counts it. Every sample of every log is checked
before anything is written; a bad one (an unknown score value, an epoch twice) is an error
naming the file, the sample id and the epoch, or with ``skip_bad`` is left out and counted.
``docs/import-inspect.md`` has the mapping and the value conventions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from gvstore.errors import GvstoreError
from gvstore.importers.common import ImportSummary, Sample, ScoreColumn, Source, plan, write
from gvstore.io import sha256_file
from gvstore.names import name_problem
from gvstore.records import Generation, Record, Verification, seal
from gvstore.store import Store
from gvstore.verifiers.registry import get_method, names_where

INSTALL = "pip install 'gvstore[inspect]'"
SUFFIXES = (".eval", ".json")
GRADE_NAMES = ("match", "exact", "includes", "choice", "pattern", "answer")
"""Scorer names that make a scorer the default grade (the first such in the log's order)."""
LETTERS = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
"""Inspect's value letters: correct, incorrect, partial, no answer."""
_WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*",
                     re.ASCII)
_EXCLUDE = {"events", "store", "messages"}  # sample fields not read (.eval logs only)


@dataclass(frozen=True)
class Verify:
    """One ``--verify SCORER[=METHOD]`` (method None: chosen from the scorer's values)."""

    scorer: str
    method: str | None = None


@dataclass(frozen=True)
class Options:
    """What to import: the grade scorer (None: the default), the verifier scorers (None:
    every other scorer), names over the log's, and whether bad samples are skipped."""

    grade: str | None = None
    verify: tuple[Verify, ...] | None = None
    task: str | None = None
    generator: str | None = None
    skip_bad: bool = False


def verify_option(text: str) -> Verify:
    """``SCORER`` or ``SCORER=METHOD``; the method must give each sample one score."""
    scorer, sep, method = text.partition("=")
    if not scorer or (sep and not method):
        raise GvstoreError(f"--verify {text!r}: expected SCORER or SCORER=METHOD")
    if sep and method not in names_where("sample", "loglik"):
        raise GvstoreError(f"--verify {text!r}: method {method!r} is not a score method; "
                           f"choose from {', '.join(names_where('sample', 'loglik'))}")
    return Verify(scorer, method or None)


class _Bad(Exception):
    """A bad sample: the message (the caller adds where)."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 200 else text[:197] + "..."


def _read_eval_log() -> Any:
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise GvstoreError(f"reading Inspect logs needs Inspect AI: {INSTALL}") from None
    return read_eval_log


def log_files(path: Path) -> list[Path]:
    """``path`` if it is a log file, else every log file under the folder ``path``."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file()
                       and p.suffix.lower() in SUFFIXES and p.name != "logs.json")
        if not found:
            raise GvstoreError(f"{path}: no Inspect logs (.eval or .json files) in this folder")
        return found
    if not path.is_file():
        raise GvstoreError(f"{path}: no such file or folder")
    if path.suffix.lower() not in SUFFIXES:
        raise GvstoreError(f"{path}: not an Inspect log; use a file ending in .eval or .json")
    return [path]


def read_log(path: Path) -> Any:
    """The ``EvalLog`` of ``path``; a file Inspect cannot read is a one-line error."""
    read = _read_eval_log()
    try:
        log = read(str(path), resolve_attachments="core", exclude_fields=set(_EXCLUDE))
    except Exception as exc:  # Inspect raises zip, JSON, pydantic and OS errors here
        raise GvstoreError(f"{path}: not a readable Inspect log ({_one_line(exc)})") from None
    if not log.samples:
        raise GvstoreError(f"{path}: the log holds no samples (written with "
                           f"--no-log-samples, or a run that stopped before any)")
    return log


def log_name(value: object, what: str, option: str, path: Path) -> str:
    """A name of the log (a task, model or scorer name) as a store name: ``/`` between safe
    names becomes ``-`` (``mockllm/model``: ``mockllm-model``); anything else unsafe is an
    error asking for ``option``."""
    text = str(value) if value is not None else ""
    for part in text.split("/"):
        problem = name_problem(part)
        if problem is not None:
            raise GvstoreError(f"{path}: the log's {what} {_show(text)} is not a usable name "
                               f"({problem}); give one with {option}")
    return text.replace("/", "-")


def _scorer_names(log: Any) -> list[str]:
    """The log's scorers in its order (the header's, then any only the samples name)."""
    names = [s.name for s in (log.eval.scorers or [])]
    for s in log.samples:
        names += [k for k in (s.scores or {}) if k not in names]
    return names


def _value(v: Any, scorer: str) -> float | None:
    """An Inspect score value as a number: the letters of ``LETTERS``, yes/no/true/false,
    a boolean or a number (None: no value)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        x = float(v)
    elif isinstance(v, str) and v in LETTERS:
        return LETTERS[v]
    elif isinstance(v, str) and v.strip().lower() in _WORDS:
        return _WORDS[v.strip().lower()]
    elif isinstance(v, str) and _NUMBER.fullmatch(v):
        x = float(v)
    elif isinstance(v, list | dict):
        raise _Bad(f"scorer {scorer!r}: a {type(v).__name__} value ({_show(v)}); only "
                   f"single values are imported")
    else:
        raise _Bad(f"scorer {scorer!r}: value {_show(v)} is not a score (C, I, P, N, a "
                   f"boolean or a number)")
    if not math.isfinite(x):
        raise _Bad(f"scorer {scorer!r}: value {_show(v)} is not finite")
    return x


def default_method(log: Any, scorer: str) -> str:
    """``cot_binary`` for a scorer whose values are all correct/incorrect verdicts (C, I,
    booleans, yes/no), else ``mc``."""
    for s in log.samples:
        score = (s.scores or {}).get(scorer)
        v = None if score is None else score.value
        if v is None or isinstance(v, bool) or v == "N":
            continue
        if not (isinstance(v, str) and (v in ("C", "I") or v.strip().lower() in _WORDS)):
            return "mc"
    return "cot_binary"


def choose(log: Any, opts: Options, path: Path) -> tuple[str, list[ScoreColumn]]:
    """(the grade scorer, the verifier columns) of a log, by ``opts`` or the defaults."""
    names = _scorer_names(log)
    if not names:
        raise GvstoreError(f"{path}: the log has no scores (run with scoring)")
    listed = f"the log's scorers: {', '.join(names)}"
    if opts.grade is not None and opts.grade not in names:
        raise GvstoreError(f"{path}: no scorer {opts.grade!r} to grade by; {listed}")
    grade = opts.grade or next((n for n in names if n in GRADE_NAMES), names[0])
    wanted = opts.verify if opts.verify is not None else tuple(
        Verify(n) for n in names if n != grade)
    cols: list[ScoreColumn] = []
    for v in wanted:
        if v.scorer not in names:
            raise GvstoreError(f"{path}: no scorer {v.scorer!r} to verify with; {listed}")
        if v.scorer == grade:
            raise GvstoreError(f"{path}: scorer {grade!r} is the grade; it cannot be a "
                               f"verifier too (choose the grade with --grade)")
        name = log_name(v.scorer, "scorer name", "--verify naming the other scorers", path)
        method = v.method or default_method(log, v.scorer)
        if any(c.column == v.scorer and c.method == method for c in cols):
            raise GvstoreError(f"--verify: scorer {v.scorer!r} with method {method!r} is "
                               f"given twice")
        cols.append(ScoreColumn(verifier=name, method=method, column=v.scorer))
    return grade, cols


def _prompt_text(value: Any) -> str:
    """A string input as is; chat messages as ``role: text`` paragraphs (one user message:
    its text)."""
    if isinstance(value, str):
        return value
    msgs = list(value)
    if len(msgs) == 1 and msgs[0].role == "user":
        return str(msgs[0].text)
    return "\n\n".join(f"{m.role}: {m.text}" for m in msgs)


def _reference(target: Any) -> str:
    if isinstance(target, str):
        return target
    targets = [str(t) for t in target]
    return targets[0] if len(targets) == 1 else json.dumps(targets, ensure_ascii=False)


def _verdict(score: Any, col: ScoreColumn) -> float | None:
    if score is None or score.value == "N":
        return None
    x = _value(score.value, col.column)
    rng = get_method(col.method).score_range
    if x is not None and rng is not None and not rng[0] <= x <= rng[1]:
        raise _Bad(f"scorer {col.column!r}: value {_show(score.value)} is outside the range "
                   f"[{rng[0]:g}, {rng[1]:g}] of method {col.method!r} (choose another with "
                   f"--verify {col.column}=METHOD)")
    return x


@dataclass
class LogSamples:
    """What one log gives: its samples (with each verifier's raw output) and counts."""

    path: Path
    log: Any
    grade: str
    columns: list[ScoreColumn]
    samples: list[Sample] = field(default_factory=list)
    raws: list[tuple[str, ...]] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    unscored: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    no_output: int = 0


def _sample(got: LogSamples, s: Any, where: str,
            seen: set[tuple[str, int]], texts: dict[str, tuple[str, str]],
            ) -> tuple[Sample, tuple[str, ...]]:
    """One scored, error-free Inspect sample as a ``Sample`` and its verifiers' raw texts."""
    if not isinstance(s.epoch, int) or s.epoch < 1:
        raise _Bad(f"epoch {_show(s.epoch)} is not a whole number >= 1")
    item, index = str(s.id), s.epoch - 1
    prompt, ref = _prompt_text(s.input), _reference(s.target)
    if (item, index) in seen:
        raise _Bad("this sample id and epoch are in the log twice")
    if texts.setdefault(item, (prompt, ref)) != (prompt, ref):
        raise _Bad("another input or target than the other epochs of this sample")
    scores = s.scores or {}
    grade = scores[got.grade]
    correct = _value(grade.value, got.grade)
    if correct is not None and not 0.0 <= correct <= 1.0:
        raise _Bad(f"scorer {got.grade!r}: value {_show(grade.value)} is outside [0, 1], so "
                   f"it is no grade (choose another with --grade)")
    verdicts = tuple(_verdict(scores.get(c.column), c) for c in got.columns)
    raws = tuple(str((scores.get(c.column) and scores[c.column].explanation) or "")
                 for c in got.columns)
    extracted = grade.answer if isinstance(grade.answer, str) else None
    text = s.output.completion if s.output is not None else ""
    return Sample(where=where, item_id=item, text=text, index=index, prompt=prompt,
                  reference=ref, correct=correct, extracted=extracted,
                  scores=verdicts), raws


def log_samples(path: Path, opts: Options) -> LogSamples:
    """Read and check every sample of one log (nothing is written)."""
    log = read_log(path)
    grade, cols = choose(log, opts, path)
    got = LogSamples(path=path, log=log, grade=grade, columns=cols)
    seen: set[tuple[str, int]] = set()
    texts: dict[str, tuple[str, str]] = {}
    for s in log.samples:
        where = f"{path} sample {_show(s.id)} epoch {_show(s.epoch)}"
        if s.error is not None:
            got.errored.append(where)
            continue
        score = (s.scores or {}).get(grade)
        if score is None or score.value is None:
            got.unscored.append(where)
            continue
        try:
            sample, raws = _sample(got, s, where, seen, texts)
        except _Bad as exc:
            if not opts.skip_bad:
                raise GvstoreError(f"{where}: {exc}") from None
            got.bad.append(where)
            continue
        seen.add((sample.item_id, sample.index))
        got.samples.append(sample)
        got.raws.append(raws)
        got.no_output += s.output is None or not s.output.choices
    return got


def with_raws(records: list[Record], raws: list[tuple[str, ...]]) -> list[Record]:
    """``plan``'s records with each verification's raw output (the scorer's explanation)
    filled in; ``plan`` writes per sample its generation, then its grade and verifications,
    so the n-th generation's verifications take the n-th sample's texts in column order."""
    out: list[Record] = []
    n, k = -1, 0
    for r in records:
        if isinstance(r, Generation):
            n, k = n + 1, 0
        elif isinstance(r, Verification):
            raw = raws[n][k]
            k += 1
            if raw:
                r = seal(msgspec.structs.replace(r, raw=raw))
        out.append(r)
    return out


def _source(got: LogSamples, opts: Options) -> Source:
    ev = got.log.eval
    task = opts.task or log_name(ev.task, "task name", "--task", got.path)
    generator = opts.generator or log_name(ev.model, "model name", "--generator", got.path)
    source = Source(path=got.path, digest="sha256:" + sha256_file(got.path), kind="inspect",
                    task=task, generator=generator)
    source.check()
    return source


def _info(got: LogSamples, source: Source) -> dict[str, Any]:
    """What the summary adds for an Inspect log."""
    return {"task": source.task, "generator": source.generator, "log_status": got.log.status,
            "grade": got.grade, "verifiers": {c.verifier: c.method for c in got.columns},
            "errored": len(got.errored), "unscored": len(got.unscored), "bad": len(got.bad),
            "no_output": got.no_output,
            "epochs": sorted({s.index + 1 for s in got.samples})}


def import_inspect(store: Store, path: Path | str, opts: Options,
                   ) -> list[tuple[ImportSummary, dict[str, Any]]]:
    """Import one log, or every log under a folder: all are read and checked first, then
    each log's records the store lacks are added (one segment per log)."""
    logs = [log_samples(p, opts) for p in log_files(Path(path))]
    planned = []
    slots: dict[tuple[str, str, str, int], Path] = {}
    for got in logs:
        if not got.samples:
            raise GvstoreError(f"{got.path}: no samples to import ({len(got.log.samples)} in "
                               f"the log: {len(got.errored)} with an error, "
                               f"{len(got.unscored)} not scored by {got.grade!r}, "
                               f"{len(got.bad)} bad)")
        source = _source(got, opts)
        for s in got.samples:
            other = slots.setdefault((source.task, source.generator, s.item_id, s.index),
                                     got.path)
            if other != got.path:
                raise GvstoreError(f"{got.path} and {other} both hold sample {s.index} of "
                                   f"prompt {_show(s.item_id)} for generator "
                                   f"{source.generator!r}; import them one at a time, each "
                                   f"under its own --generator")
        skipped = got.errored + got.unscored + got.bad
        summary = ImportSummary(
            source=str(got.path), digest=source.digest, folder=source.folder,
            rows=len(got.log.samples), skipped=len(skipped), skipped_at=skipped[:20],
            prompts=len({s.item_id for s in got.samples}), samples=len(got.samples))
        records = with_raws(plan(source, got.samples, got.columns), got.raws)
        planned.append((source, records, summary, _info(got, source)))
    for source, records, summary, _ in planned:
        write(store, source, records, summary)
    return [(summary, info) for _, _, summary, info in planned]
