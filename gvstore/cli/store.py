"""``gvstore store ...``: statistics, integrity check, compaction, one record, synthetic
stores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.progress import TaskID
from rich.text import Text

from gvstore.cli.console import emit, note, print_json
from gvstore.cli.options import JsonOpt, QuietOpt, StoreOpt, get_store
from gvstore.errors import GvstoreError
from gvstore.output import console, err_console, safe_text, table
from gvstore.progress import progress
from gvstore.records import encoder, kind_of
from gvstore.store import Store, stats

store_app = typer.Typer(help="Inspect, check and synthesise record stores.", no_args_is_help=True)


@store_app.command("stats")
def stats_cmd(ctx: typer.Context, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Record counts by kind, model, task and method; bytes on disk and compression ratio."""
    st = stats(get_store(ctx, store))
    data = {
        "root": st.root, "segments": st.segments, "records": st.records,
        "duplicates": st.duplicates, "by_kind": st.by_kind, "models": st.models,
        "tasks": st.tasks, "methods": st.methods, "verifiers": st.verifiers,
        "bytes_on_disk": st.bytes_on_disk, "bytes_raw": st.bytes_raw,
        "compression_ratio": round(st.compression_ratio, 3),
        "bytes_per_record": round(st.bytes_on_disk / st.records, 1) if st.records else None,
    }
    overview = table(f"store {st.root}", ["", "value"], [
        ["segments", st.segments], ["records", st.records],
        ["duplicates dropped", st.duplicates],
        ["bytes on disk", st.bytes_on_disk], ["bytes uncompressed", st.bytes_raw],
        ["compression ratio", f"{st.compression_ratio:.2f}x"],
        ["bytes per record", data["bytes_per_record"]],
    ])
    groups = [
        table(title, ["name", "records"], sorted(d.items()))
        for title, d in (("by kind", st.by_kind), ("generations by model", st.models),
                         ("generations by task", st.tasks),
                         ("verifications by method", st.methods),
                         ("verifications by verifier", st.verifiers))
        if d
    ]
    emit(data, as_json, overview, *groups)


def _verify_data(rep: Any) -> dict[str, Any]:
    """The JSON of a verify report."""
    return {
        "ok": rep.ok, "segments": rep.segments, "records": rep.records,
        "duplicates": rep.duplicates, "cache_files": rep.cache_files,
        "damaged_segments": [{"path": p, "reason": r} for p, r in rep.damaged_segments],
        "missing_segments": [{"path": p, "journal": j} for p, j in rep.missing_segments],
        "bad_records": [{"path": p, "line": n, "reason": r} for p, n, r in rep.bad_records],
        "damaged_journals": [{"path": p, "reason": r} for p, r in rep.damaged_journals],
        "damaged_cache": [{"path": p, "reason": r} for p, r in rep.damaged_cache],
        "leftover_tmp": rep.leftover_tmp, "unjournalled": rep.unjournalled,
        "no_journal": rep.no_journal, "torn_journals": rep.torn_journals,
        "unlisted_cache": rep.unlisted_cache, "interrupted_compactions": rep.compactions,
        "fixed": rep.fixed,
    }


def _verify_lines(rep: Any) -> list[str]:
    """A verify report for people: one line per finding, then the verdict."""
    lines = [f"DAMAGED {p}: {r}" for p, r in rep.damaged_segments]
    lines += [f"MISSING {p}: listed in {j} but not on disk" for p, j in rep.missing_segments]
    lines += [f"BAD RECORD {p}:{n}: {r}" for p, n, r in rep.bad_records]
    lines += [f"DAMAGED JOURNAL {p}: {r}" for p, r in rep.damaged_journals]
    lines += [f"DAMAGED CACHE {p}: {r} (rebuilt on the next analysis; --fix deletes it)"
              for p, r in rep.damaged_cache]
    lines += [f"note: leftover temporary file {p} (a killed writer; removed by the next "
              "write or --fix)" for p in rep.leftover_tmp]
    lines += [f"note: segment {p} is not in its journal yet (a writer killed mid-commit; "
              "adopted by the next write or --fix)" for p in rep.unjournalled]
    lines += [f"note: folder {p} has no journal (written before journals; created by the "
              "next write or --fix)" for p in rep.no_journal]
    lines += [f"note: journal {p} ends in a torn line (ignored; cut by the next write)"
              for p in rep.torn_journals]
    lines += [f"note: cache file {p} is in no manifest (never used; --fix deletes it)"
              for p in rep.unlisted_cache]
    lines += [f"note: folder {p} holds an interrupted compaction (reads are right; finished "
              "or undone by the next write or --fix)" for p in rep.compactions]
    lines += [f"fixed: {line}" for line in rep.fixed]
    verdict = "ok" if rep.ok else "DAMAGED"
    lines.append(
        f"{verdict}: {rep.segments} segments, {rep.records} records checked, "
        f"{rep.duplicates} duplicates, {len(rep.damaged_segments)} damaged segments, "
        f"{len(rep.missing_segments)} missing segments, "
        f"{len(rep.bad_records)} bad records, {rep.cache_files} cache files checked, "
        f"{len(rep.damaged_cache)} damaged"
    )
    return lines


@store_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    fix: Annotated[bool, typer.Option(
        "--fix", help="Tidy what can be tidied: remove temporary files of dead writers, adopt "
        "unjournalled segments, forget journalled segments that are missing (their records "
        "are lost; rerun the stage), delete damaged cache files. Damaged segments are kept.",
    )] = False,
    store: StoreOpt = None,
) -> None:
    """Re-hash every segment and record, check each folder's journal and the projection
    cache; list what is damaged; exit 1 if anything is."""
    rep = get_store(ctx, store).verify(fix=fix)
    if as_json:
        print_json(_verify_data(rep))
    else:
        for line in _verify_lines(rep):
            note(line, err=False)  # one line each, never wrapped: paths stay greppable
    if not rep.ok:
        raise typer.Exit(1)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "k": 1 << 10, "kib": 1 << 10,
          "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def _size(text: str) -> int:
    """Bytes of a size like ``64MiB``, ``64M`` (binary), ``64MB`` (decimal) or ``4096``."""
    t = text.strip().lower().replace("_", "")
    num = t.rstrip("kmgib")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = float("nan")
    if unit not in _UNITS or not value == value or value <= 0 or value > 1 << 50:
        raise GvstoreError(f"--target-size {text!r} is not a size (e.g. 64MiB, 64M, 64MB or "
                           "67108864)")
    return int(value * _UNITS[unit])


def _compact_line(r: Any) -> str:
    if not r.merged:
        return f"{r.folder}: {r.segments_before} segments, nothing to merge"
    return (f"{r.folder}: {r.segments_before} -> {r.segments_after} segments ({r.merged} "
            f"merged into {r.written}, {r.records} records, {r.duplicates} duplicates "
            f"dropped, {r.bytes_before} -> {r.bytes_after} bytes, {r.seconds:.1f} s)")


@store_app.command("compact")
def compact_cmd(
    ctx: typer.Context,
    folders: Annotated[list[str] | None, typer.Argument(
        help="Store folders to compact (e.g. gen/qwen-arith); none: every folder.",
        show_default=False)] = None,
    target_size: Annotated[str, typer.Option(
        "--target-size", help="Compressed size of a merged segment; segments of half this "
        "or more are left alone (64MiB, 64M, 64MB, or bytes).")] = "64MiB",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Merge each folder's small segments into large ones (crash-safe: a kill at any point
    leaves the same records; the next write or `store verify --fix` finishes the job)."""
    from gvstore import compact

    target = compact.check_target(_size(target_size))
    st = get_store(ctx, store)
    todo = compact.store_folders(st.root, folders)
    results = []
    with progress(quiet or as_json) as bar:
        for name, path in todo:
            job = bar.add_task(f"compact {name}", total=None, rate="")

            def tick(done: int, total: int, job: TaskID = job) -> None:
                bar.update(job, completed=done, total=total)

            results.append(compact.compact_folder(path, target=target, name=name,
                                                  on_progress=tick))
            bar.update(job, completed=1, total=1)
    before = sum(r.segments_before for r in results)
    after = sum(r.segments_after for r in results)
    if as_json:
        print_json({"root": str(st.root), "target_size": target, "segments_before": before,
                    "segments_after": after, "folders": [r.as_dict() for r in results]})
        return
    for r in results:
        note(_compact_line(r), err=False)
        if r.settled:
            note(f"note: {r.settled}", err=False)
    note(f"compacted {len(results)} folders of {st.root}: {before} -> {after} segments",
         err=False)


@store_app.command("show")
def show_cmd(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="A record id or key, or a unique prefix of one.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one record, whole."""
    rec = get_store(ctx, store).get(record)
    if as_json:
        print_json(msgspec.to_builtins(rec))
        return
    text = msgspec.json.format(encoder.encode(rec), indent=2).decode()
    console.print(Text.assemble((kind_of(rec), "bold"), " ", safe_text(rec.id)))
    from rich.syntax import Syntax  # pygments: only for this command

    console.print(Syntax(safe_text(text, multiline=True), "json", word_wrap=True))


def _methods(value: str) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in value.split(",") if m.strip())
    if not methods:
        raise GvstoreError("--methods needs at least one method")
    return methods


@store_app.command("synth")
def synth_cmd(
    path: Annotated[Path, typer.Argument(help="Store root to write into (created if needed).")],
    prompts: Annotated[int, typer.Option(help="Number of prompts.")] = 100,
    samples: Annotated[int, typer.Option(help="Samples per prompt.")] = 8,
    methods: Annotated[
        str, typer.Option(help="Comma-separated: mc, cot_binary, cot_score, tournament.")
    ] = "mc,cot_score",
    seed: Annotated[int, typer.Option(help="Seed of the simulator.")] = 0,
    alpha: Annotated[float, typer.Option(help="Beta(alpha, beta) of per-prompt accuracy.")] = 2.0,
    beta: Annotated[float, typer.Option(help="Beta(alpha, beta) of per-prompt accuracy.")] = 2.0,
    discrimination: Annotated[
        float, typer.Option(help="How well scores separate correct from wrong (0 = not).")
    ] = 1.5,
    parse_failure: Annotated[
        float, typer.Option(help="Share of cot verifications and matches with no verdict.")
    ] = 0.05,
    repeats: Annotated[int, typer.Option(help="Verifications per generation and method.")] = 1,
    tournament_rounds: Annotated[
        int, typer.Option(help="Tournament rounds (brackets of 2**rounds).")
    ] = 3,
    task: Annotated[str, typer.Option(help="Task name written in the records.")] = "synth",
    generator: Annotated[str, typer.Option(help="Generator model name.")] = "sim-gen",
    verifier: Annotated[str, typer.Option(help="Verifier model name.")] = "sim-ver",
    quiet: QuietOpt = False,
) -> None:
    """Write a synthetic store from a seeded simulator (no model needed).

    Per-prompt accuracy is drawn from a Beta distribution; verifier scores are drawn
    conditional on correctness with the chosen discrimination; cot verdicts and tournament
    matches fail to parse at the chosen rate. Same arguments, same records.
    """
    from gvstore import synth

    cfg = synth.SynthConfig(
        prompts=prompts, samples=samples, methods=_methods(methods), seed=seed, alpha=alpha,
        beta=beta, discrimination=discrimination, parse_failure=parse_failure,
        repeats=repeats, tournament_rounds=tournament_rounds, task=task, generator=generator,
        verifier=verifier,
    )
    cfg.check()
    store = Store(path)
    start = time.monotonic()
    n = 0
    with progress(quiet) as bar, store.writer("synth", flush_records=50_000) as w:
        job = bar.add_task("synth", total=prompts, rate="")
        for rec in synth.generate(cfg):
            w.add(rec)
            n += 1
            if kind_of(rec) == "prompt":
                bar.advance(job)
        bar.update(job, completed=prompts)
    err_console.print(
        f"wrote {n} records in {len(w.written)} segments to {store.root} "
        f"({time.monotonic() - start:.1f} s)", highlight=False,
    )
