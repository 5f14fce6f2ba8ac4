"""One line of an lm-eval ``--log_samples`` file: parsing it, and the grades of its repeats.

``gvstore.importers.lmeval`` (which reads whole files and folders) explains the format and
the grade derivation; this module holds the per-line rules it applies.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from gvstore.errors import GvstoreError

METRIC = "exact_match"
INVALID = "[invalid]"
"""What lm-eval's regex filter returns when nothing matches (no extracted answer)."""

class BadLine(Exception):
    """A bad line (the caller adds where)."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."



def exact_match(prediction: str, reference: str, settings: dict[str, Any]) -> float:
    """lm-eval's ``exact_match_hf_evaluate`` on one prediction: delete each regex to ignore
    (in order) from both, optionally lowercase and drop punctuation and digits, compare."""
    pred, ref = prediction, reference
    for rx in settings.get("regexes_to_ignore") or []:
        pred, ref = re.sub(rx, "", pred), re.sub(rx, "", ref)
    if settings.get("ignore_case"):
        pred, ref = pred.lower(), ref.lower()
    for flag, chars in (("ignore_punctuation", string.punctuation),
                        ("ignore_numbers", string.digits)):
        if settings.get(flag):
            table = str.maketrans("", "", chars)
            pred, ref = pred.translate(table), ref.translate(table)
    return float(pred == ref)


@dataclass
class Line:
    where: str
    doc_id: int
    filter: str
    prompt: str
    target: str
    resps: list[str]
    filtered: list[str] | str
    values: dict[str, Any]


def loglik_error(where: str) -> GvstoreError:
    return GvstoreError(
        f"{where}: a loglikelihood (multiple-choice) task: its responses are log-likelihoods "
        f"of given choices, not generated text, so there are no samples to import; gvstore "
        f"imports generate_until tasks only")


def _strings(v: Any, what: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BadLine(f"{what}: expected a list of strings, got {_show(v)}")
    return v


def _request(row: dict[str, Any], where: str) -> str:
    """The prompt text of a line's single generate_until request."""
    args = row.get("arguments")
    if isinstance(args, list):  # an older layout: [[prompt, kwargs], ...]
        args = {f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(r)}
                for i, r in enumerate(args) if isinstance(r, list)}
    if not isinstance(args, dict) or not args:
        raise BadLine(f"arguments: expected the requests, got {_show(args)}")
    first = args.get("gen_args_0")
    if not isinstance(first, dict) or not isinstance(first.get("arg_0"), str):
        raise BadLine(f"arguments: no prompt text (gen_args_0.arg_0) in {_show(args)}")
    if isinstance(first.get("arg_1"), str):
        raise loglik_error(where)
    if len(args) != 1:
        raise BadLine(f"arguments: {len(args)} requests, a generate_until doc has one")
    return str(first["arg_0"])


def parse(row: Any, where: str) -> Line:
    if not isinstance(row, dict):
        raise BadLine(f"expected a JSON object, got {type(row).__name__}")
    for key in ("doc_id", "target", "arguments", "resps", "filtered_resps", "filter"):
        if key not in row:
            raise BadLine(f"no {key!r} (not an lm-eval samples line?)")
    doc_id = row["doc_id"]
    if isinstance(doc_id, bool) or not isinstance(doc_id, int) or doc_id < 0:
        raise BadLine(f"doc_id: expected a whole number >= 0, got {_show(doc_id)}")
    prompt = _request(row, where)
    resps = row["resps"]
    if isinstance(resps, list) and resps and isinstance(resps[0], list) and resps[0] \
            and isinstance(resps[0][0], list):
        raise loglik_error(where)
    if not isinstance(resps, list) or len(resps) != 1:
        raise BadLine(f"resps: expected one list of responses, got {_show(resps)}")
    texts = _strings(resps[0], "resps")
    if not texts:
        raise BadLine("resps: no responses")
    fr = row["filtered_resps"]
    if not isinstance(fr, list) or len(fr) != 1:
        raise BadLine(f"filtered_resps: expected one entry, got {_show(fr)}")
    filtered = fr[0] if isinstance(fr[0], str) else _strings(fr[0], "filtered_resps")
    if not isinstance(row["filter"], str) or not row["filter"]:
        raise BadLine(f"filter: expected a filter name, got {_show(row['filter'])}")
    target = row["target"]
    if not isinstance(target, str | int | float) or isinstance(target, bool):
        raise BadLine(f"target: expected a string, got {_show(target)}")
    return Line(where, doc_id, row["filter"], prompt, str(target), texts, filtered, row)


def read_lines(path: Path) -> tuple[list[Line | BadLine], list[str]]:
    """Every non-blank line of a samples file, parsed (or what is wrong with it)."""
    out: list[Line | BadLine] = []
    wheres: list[str] = []
    try:
        with open(path, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                where = f"{path} line {n}"
                wheres.append(where)
                try:
                    out.append(parse(msgspec.json.decode(raw), where))
                except msgspec.DecodeError as exc:
                    out.append(BadLine(f"not JSON: {exc}"))
                except BadLine as exc:
                    out.append(exc)
    except OSError as exc:
        raise GvstoreError(f"cannot read {path}: {exc.strerror}") from exc
    return out, wheres


def metric_value(line: Line, metric: str) -> float:
    if metric not in line.values:
        listed = line.values.get("metrics")
        names = ", ".join(listed) if isinstance(listed, list) else "none listed"
        raise BadLine(f"no metric {metric!r} for filter {line.filter!r} (its metrics: {names})")
    v = line.values[metric]
    if isinstance(v, bool):
        return float(v)
    if not isinstance(v, int | float) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise BadLine(f"metric {metric!r}: expected a number in [0, 1], got {_show(v)}")
    return float(v)


def _answer(a: str) -> str | None:
    return None if a.strip() == INVALID else a


def repeat_grades(line: Line, metric: str, settings: dict[str, Any] | None,
                  ) -> list[tuple[float, str | None]]:
    """(grade, extracted answer) of each repeat of a doc under one filter (module doc)."""
    k, value = len(line.resps), metric_value(line, metric)
    if isinstance(line.filtered, str):
        if k == 1:
            return [(value, _answer(line.filtered))]
        raise GvstoreError(
            f"{line.where}: filter {line.filter!r} keeps one answer per doc (take_first or "
            f"a majority vote) for {k} repeats, so its {metric!r} grades that one answer, not "
            f"each repeat; import with --no-grades and grade with `gvstore grade` (where "
            f"gvstore knows the task), or choose other filters with --strict/--flexible")
    if len(line.filtered) != k:
        raise BadLine(f"filter {line.filter!r}: {len(line.filtered)} filtered answers for {k} "
                   f"responses")
    answers = [_answer(a) for a in line.filtered]
    if k == 1:
        return [(value, answers[0])]
    if settings is not None:
        grades = [exact_match(a, line.target, settings) for a in line.filtered]
        if abs(sum(grades) / k - value) > 1e-9:
            raise BadLine(f"filter {line.filter!r}: the repeats' exact_match recomputed with the "
                       f"task's settings averages {sum(grades) / k:g}, lm-eval logged "
                       f"{value:g}; refusing to guess the per-repeat grades")
        return list(zip(grades, answers, strict=True))
    if value in (0.0, 1.0):
        return [(value, a) for a in answers]
    raise BadLine(f"filter {line.filter!r}: {metric} {value:g} is a mean over {k} repeats and "
               f"the results JSON with the metric's settings is missing, so which repeats are "
               f"right is unknown; use --no-grades")
