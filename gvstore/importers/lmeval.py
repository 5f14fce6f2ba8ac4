"""``gvstore import lm-eval``: the ``samples_<task>_<date>.jsonl`` files of ``--log_samples``.

What lm-evaluation-harness 0.4.13 writes (``evaluator.py``, ``loggers/evaluation_tracker.py``):
one line per (doc, filter), so a task with the filters ``strict-match`` and
``flexible-extract`` holds every doc twice, once per filter, each line with its ``filter``
name. A line holds ``doc_id``, ``doc``, ``target`` (a string), ``arguments``
(``{"gen_args_0": {"arg_0": prompt, "arg_1": generation kwargs}}``), ``resps`` (one list of
the ``repeats`` responses), ``filtered_resps`` (that filter's output: a list of one answer per
repeat, or one string when the chain ends in ``take_first`` or a majority vote) and the
metrics (``exact_match``: ...) the task computed on ``filtered_resps`` for that doc.

A doc's metric is per doc, not per repeat: lm-eval scores ``filtered_resps[0]``, i.e. one
string (``take_first``: repeat 0's answer only; a vote: the voted answer) or the list of the
repeats' answers, which ``exact_match`` averages (its ``np.mean`` over the list). So the
per-sample grades are derived thus (docs/import-lmeval.md):

* one repeat: the metric is that sample's grade;
* several repeats and one answer per repeat: each repeat's grade is lm-eval's
  ``exact_match`` of its own answer, recomputed with the metric's settings from the
  ``results_<date>.json`` beside the file, and their mean must equal the logged value, else the
  doc is refused; without those settings only a value of 0 or 1 (all wrong, all right) fixes
  every repeat, any other is refused;
* several repeats and one answer per doc: the metric grades no single repeat: refused (import
  with ``grades=False`` and grade with ``gvstore grade`` where gvstore knows the task).

Loglikelihood (multiple choice) tasks have no generated text: refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from gvstore.errors import GvstoreError
from gvstore.importers.common import ImportSummary, Sample, Source, plan, write
from gvstore.importers.lmeval_lines import (
    METRIC,
    BadLine,
    Line,
    loglik_error,
    read_lines,
    repeat_grades,
)
from gvstore.io import sha256_file
from gvstore.store import Store

KIND = "lm-eval"
STRICT_FILTER, FLEXIBLE_FILTER = "strict-match", "flexible-extract"
SAMPLES_NAME = re.compile(
    r"samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)\.jsonl")
_LOGLIK = ("loglikelihood", "loglikelihood_rolling", "multiple_choice")
_EM_KEYS = ("regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers")


@dataclass(frozen=True)
class Choice:
    """The filter and metric that give one grade (``filter=None``: the default filter)."""

    filter: str | None = None
    metric: str = METRIC

    def __str__(self) -> str:
        return f"{self.filter}:{self.metric}"


def choice_option(text: str) -> Choice:
    """``FILTER`` or ``FILTER:METRIC``."""
    name, _, metric = text.partition(":")
    if not name:
        raise GvstoreError(f"{text!r}: expected FILTER or FILTER:METRIC")
    return Choice(name, metric or METRIC)


@dataclass(frozen=True)
class Options:
    strict: Choice = Choice()
    flexible: Choice = Choice()
    task: str | None = None
    generator: str | None = None
    grades: bool = True
    skip_bad: bool = False


@dataclass
class FileImport:
    """One samples file read and checked: its samples and how they were named and graded."""

    path: Path
    samples: list[Sample]
    lines: int
    skipped: list[str]
    task: str
    generator: str
    strict: str | None
    flexible: str | None
    repeats: list[int] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"task": self.task, "generator": self.generator, "strict": self.strict,
                "flexible": self.flexible, "repeats": sorted(set(self.repeats))}



def samples_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``samples_*.jsonl`` under the folder ``path``."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise GvstoreError(f"{path}: no such file or folder")
    found = sorted(p for p in path.rglob("samples_*.jsonl") if p.is_file())
    if not found:
        raise GvstoreError(f"{path}: no samples_*.jsonl files in this folder (lm-eval writes "
                           f"them with --log_samples)")
    return found


def _results(path: Path) -> dict[str, Any] | None:
    """The ``results_<date>.json`` beside a samples file (None: there is none)."""
    m = SAMPLES_NAME.fullmatch(path.name)
    beside = path.with_name(f"results_{m['date']}.json") if m else None
    if beside is None or not beside.is_file():
        return None
    try:
        got = msgspec.json.decode(beside.read_bytes())
    except (msgspec.DecodeError, OSError) as exc:
        raise GvstoreError(f"{beside}: not a readable lm-eval results file: {exc}") from exc
    if not isinstance(got, dict):
        raise GvstoreError(f"{beside}: not a readable lm-eval results file: not an object")
    return got


def generator_name(results: dict[str, Any]) -> str | None:
    """The model's name: ``model_name`` (else ``config.model_args``' ``pretrained``), its
    last path component, characters outside the name rule replaced by ``-``."""
    name = results.get("model_name")
    cfg = results.get("config")
    args = cfg.get("model_args") if isinstance(cfg, dict) else None
    if not name and isinstance(args, dict):
        name = args.get("pretrained") or args.get("model")
    if not name and isinstance(args, str):
        kv = dict(p.partition("=")[::2] for p in args.split(","))
        name = kv.get("pretrained") or kv.get("model")
    if not isinstance(name, str) or not name.strip("/ "):
        return None
    base = name.strip().rstrip("/").rsplit("/", 1)[-1]
    safe = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", base)).lstrip("._-")
    return safe[:100] or None


def _em_settings(results: dict[str, Any] | None, task: str,
                 metric: str) -> dict[str, Any] | None:
    """The ``exact_match`` settings of ``task`` in a results file (None: unknown)."""
    if metric != METRIC or results is None:
        return None
    cfg = (results.get("configs") or {}).get(task)
    if not isinstance(cfg, dict):
        return None
    for m in cfg.get("metric_list") or []:
        if isinstance(m, dict) and m.get("metric") == METRIC:
            return {k: m[k] for k in _EM_KEYS if k in m}
    return None


def _pick(choice: Choice, default: str | None, names: list[str], path: Path) -> str:
    name = choice.filter or default
    if name is None:
        raise GvstoreError(f"{path}: filters {', '.join(names)}: name the one that grades with "
                           f"--strict FILTER[:METRIC]")
    if name not in names:
        raise GvstoreError(f"{path}: no filter {name!r}; its filters: {', '.join(names)}")
    return name


def _filters(lines: list[Line], opts: Options, path: Path) -> tuple[Choice, Choice]:
    """The strict and flexible (filter, metric), defaults resolved against the file."""
    names = list(dict.fromkeys(ln.filter for ln in lines))
    default = STRICT_FILTER if STRICT_FILTER in names else (names[0] if len(names) == 1
                                                            else None)
    strict = Choice(_pick(opts.strict, default, names, path), opts.strict.metric)
    flex_default = FLEXIBLE_FILTER if FLEXIBLE_FILTER in names else strict.filter
    flexible = Choice(_pick(opts.flexible, flex_default, names, path), opts.flexible.metric)
    return strict, flexible


def _doc(lines: dict[str, Line], first: Line, strict: Choice, flexible: Choice,
         results: dict[str, Any] | None, task: str, grades: bool) -> list[Sample]:
    """The samples of one doc (its lines by filter); raises ``BadLine`` for the doc."""
    for ln in lines.values():
        if (ln.prompt, ln.target, ln.resps) != (first.prompt, first.target, first.resps):
            raise BadLine(f"doc {first.doc_id}: its prompt, target or responses differ from "
                       f"those at {first.where}")
    k = len(first.resps)
    none: Sequence[tuple[float | None, str | None]] = [(None, None)] * k
    s_g, f_g = none, none
    if grades:
        for c in (strict, flexible):
            if c.filter not in lines:
                raise BadLine(f"doc {first.doc_id}: no line for filter {c.filter!r}")
        s_g = repeat_grades(lines[str(strict.filter)], strict.metric,
                            _em_settings(results, task, strict.metric))
        f_g = repeat_grades(lines[str(flexible.filter)], flexible.metric,
                            _em_settings(results, task, flexible.metric))
    return [Sample(where=first.where, item_id=str(first.doc_id), text=text, index=i,
                   prompt=first.prompt, reference=first.target, correct=s_g[i][0],
                   flexible=f_g[i][0], extracted=s_g[i][1] or f_g[i][1])
            for i, text in enumerate(first.resps)]


def _names(path: Path, results: dict[str, Any] | None, opts: Options) -> tuple[str, str, str]:
    """(task as lm-eval names it, task name, generator name) of a samples file."""
    m = SAMPLES_NAME.fullmatch(path.name)
    own = m["task"] if m else None
    task = opts.task or own
    if task is None:
        raise GvstoreError(f"{path}: not named samples_<task>_<date>.jsonl; give --task")
    gen = opts.generator or (generator_name(results) if results else None)
    if gen is None:
        raise GvstoreError(f"{path}: no results_<date>.json beside it naming the model; give "
                           f"--generator")
    return own or task, task, gen


def read_samples(path: Path, opts: Options) -> FileImport:
    """Read and check every line of one samples file (nothing is written)."""
    results = _results(path)
    own, task, gen = _names(path, results, opts)
    cfg = ((results or {}).get("configs") or {}).get(own)
    if isinstance(cfg, dict) and cfg.get("output_type") in _LOGLIK:
        raise loglik_error(str(path))
    parsed, wheres = read_lines(path)
    skipped: list[str] = []
    good: list[Line] = []
    for where, ln in zip(wheres, parsed, strict=True):
        if isinstance(ln, BadLine):
            if not opts.skip_bad:
                raise GvstoreError(f"{where}: {ln}")
            skipped.append(where)
        else:
            good.append(ln)
    if not good:
        raise GvstoreError(f"{path}: no samples to import ({len(wheres)} lines, "
                           f"{len(skipped)} bad)")
    strict, flexible = _filters(good, opts, path)
    docs: dict[int, dict[str, Line]] = {}
    for ln in good:
        by = docs.setdefault(ln.doc_id, {})
        if ln.filter in by:
            bad = BadLine(f"doc {ln.doc_id} filter {ln.filter!r} is already at "
                       f"{by[ln.filter].where}")
            if not opts.skip_bad:
                raise GvstoreError(f"{ln.where}: {bad}")
            skipped.append(ln.where)
            continue
        by[ln.filter] = ln
    out = FileImport(path, [], len(wheres), skipped, task, gen,
                     str(strict) if opts.grades else None,
                     str(flexible) if opts.grades else None)
    for lines in docs.values():
        first = next(iter(lines.values()))  # the doc's first line in the file
        try:
            got = _doc(lines, first, strict, flexible, results, own, opts.grades)
        except BadLine as exc:
            if not opts.skip_bad:
                raise GvstoreError(f"{first.where}: {exc}") from None
            skipped.extend(ln.where for ln in lines.values())
            continue
        out.samples.extend(got)
        out.repeats.append(len(got))
    return out


def _summary(f: FileImport) -> tuple[Source, ImportSummary]:
    source = Source(path=f.path, digest="sha256:" + sha256_file(f.path), kind=KIND,
                    task=f.task, generator=f.generator)
    source.check()
    return source, ImportSummary(
        source=str(f.path), digest=source.digest, folder=source.folder, rows=f.lines,
        skipped=len(f.skipped), skipped_at=f.skipped[:20],
        prompts=len({s.item_id for s in f.samples}), samples=len(f.samples))


def import_lmeval(store: Store, path: Path | str, opts: Options,
                  ) -> list[tuple[ImportSummary, dict[str, Any]]]:
    """Import one samples file, or every one under a folder (one task each): every file is
    read and checked before any is written; each then adds the records the store lacks (one
    segment per file)."""
    files = samples_files(Path(path))
    if opts.task is not None and len(files) > 1:
        raise GvstoreError(f"{path}: --task names one task, but this folder holds "
                           f"{len(files)} samples files; import them one by one")
    read = [read_samples(p, opts) for p in files]
    planned = []
    for f in read:
        if not f.samples:
            raise GvstoreError(f"{f.path}: no samples to import ({f.lines} lines, "
                               f"{len(f.skipped)} bad)")
        source, summary = _summary(f)
        planned.append((source, summary, plan(source, f.samples, ()), f.info()))
    for source, summary, records, _ in planned:
        write(store, source, records, summary)
    return [(summary, info) for _, summary, _, info in planned]
