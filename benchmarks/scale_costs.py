"""Per-record costs of a store at a few sizes, and what they come to at 10^7 and 10^9 records.

Builds synthetic stores (``gvstore.synth``: 128 samples per prompt, each generation graded
once and verified by ``mc``, ``cot_binary`` and ``cot_score``; generation texts of ``--words``
synthetic words ending in an answer line) of about each ``--sizes`` records, and measures,
each in a fresh process so that peak memory is its own:

  * bytes on disk per record (zstd segments and journals, as the writer makes them),
  * write time (encode + zstd + digest + fsync + rename),
  * full replay, cache cold: ``Projections(store, cache=False).load()`` (hash, decompress,
    decode, dedupe, project every segment), its peak RSS above the process's own baseline
    (Python + polars imported) and the frames' ``estimated_size``,
  * the Parquet projection cache's build (replay + writing it) and a warm load,
  * analysis, warm: ``gvstore gap mc:quantile=0.8 --json`` (1000 bootstrap resamples) as a
    whole process, after one call has built the caches (median of 3, and its peak RSS), and
    the same gap in one process (``gap_table`` on a fresh ``Dataset``, median of 5),
  * Parquet + DuckDB: ``gvstore export parquet`` (time, peak RSS, bytes) and the gap query of
    docs/scale.md ("Parquet export and warehouse queries", run as written there) over the
    export (time, the process's peak RSS with duckdb imported; again under DuckDB's
    ``memory_limit`` of 200MB, spilling to disk), checked against
    ``gvstore gap mc:tau=0.5 --resamples 0``,
  * with ``--dvc``: ``dvc push`` / ``dvc pull`` of the largest store to a local-folder remote
    (``dvc add`` of its folder, no git), and of a store written in small segments (as a run
    of small batches writes them: ``--small-size`` records, 1e6 by default, in segments of
    ``--small-segment`` = 160 records, 32 samples x 5 records) before and after
    ``gvstore store compact``.

Each figure is fitted by least squares as ``fixed + per_record * n`` over the sizes (the fixed
part is process start-up and imports) and extrapolated linearly to 10^7 and 10^9 records.
The page cache is warm (the store was just written), so "cold" means no gvstore cache.

    python benchmarks/scale_costs.py                      # 1e4, 1e5, 1e6 records (~6 min here)
    python benchmarks/scale_costs.py --sizes 1e4,1e5 --dvc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHODS = ("mc", "cot_binary", "cot_score")
SAMPLES = 128
PER_PROMPT = 1 + SAMPLES * (2 + len(METHODS))  # prompt, generations, grades, verifications
TARGETS = (10**7, 10**9)
GIB = 2**30
DUCKDB_LIMIT = "200MB"  # the gap query again under this memory_limit (out of core)


# ---- children: one measurement each, one JSON line on stdout ------------------------------

def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_replay(root: Path, cache: bool) -> dict[str, Any]:
    import polars  # noqa: F401  # in the baseline, as in any analysis process

    from gvstore.replay import Projections
    from gvstore.store import Store

    base = _rss()
    t = time.perf_counter()
    frames = Projections(Store(root), cache=cache).load()
    secs = time.perf_counter() - t
    return {"s": secs, "peak_rss": _rss() - base, "base_rss": base,
            "frames_bytes": sum(f.estimated_size() for f in frames.values()),
            "rows": {k: f.height for k, f in frames.items()}}


def child_duckdb(folder: Path, limit: str | None = None) -> dict[str, Any]:
    import re

    import duckdb

    text = (REPO / "docs" / "scale.md").read_text()
    start = text.index("## Parquet export and warehouse queries")
    section = text[start:text.index("\n## ", start + 3)]
    views, gap = re.findall(r"```sql\n(.*?)```", section, flags=re.S)[:2]
    os.chdir(folder)
    base = _rss()
    t = time.perf_counter()
    con = duckdb.connect()
    if limit:  # out of core: DuckDB spills what does not fit to its temporary folder
        con.execute(f"SET memory_limit = '{limit}'; SET temp_directory = '{folder}/spill'")
    con.execute(views)
    rel = con.sql(gap)
    rows = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    return {"s": time.perf_counter() - t, "peak_rss": _rss(), "base_rss": base,
            "gap": [r["gap"] for r in rows], "prompts": [r["prompts"] for r in rows]}


def child_gap(root: Path) -> dict[str, Any]:
    """One warm gap in this process, as analysis_bench.py times it: a fresh Projections and
    Dataset per call (median of 5), then the process's peak RSS."""
    from gvstore.analysis.frames import Dataset
    from gvstore.analysis.gap import gap_table
    from gvstore.analysis.specs import parse
    from gvstore.replay import Projections
    from gvstore.store import Store

    times = []
    for _ in range(5):
        t = time.perf_counter()
        gap_table(Dataset(Projections(Store(root))), [parse("mc:quantile=0.8")], resamples=1000)
        times.append(time.perf_counter() - t)
    return {"s": statistics.median(times), "peak_rss": _rss()}


def child_proc(*cmd: str) -> dict[str, Any]:
    """``cmd`` run once: its wall time and its peak RSS (the only child this process has)."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True,
                   env={**os.environ, "GVSTORE_NO_PROGRESS": "1"})
    secs = time.perf_counter() - t
    return {"s": secs, "peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)],
                         capture_output=True,
                         text=True, check=False)
    if out.returncode:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---- the parent ---------------------------------------------------------------------------

def du(path: Path, skip: str = ".cache") -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file() and skip not in p.parts]
    return sum(p.stat().st_size for p in files), len(files)


def real_texts(path: Path | None, words: int) -> list[str] | None:
    """Texts of about ``words`` words made of the ``answer`` fields of a JSON-lines file (a
    GSM8K split: human chains of thought), joined in file order; None without a file."""
    if path is None:
        return None
    answers = [json.loads(line)["answer"] for line in path.read_text().splitlines() if line]
    out, cur = [], []
    for a in answers:
        cur.append(a)
        if sum(len(x.split()) for x in cur) >= words:
            out.append("\n\n".join(cur))
            cur = []
    return out


def records(cfg: Any, texts: list[str] | None) -> Any:
    """The synthetic records, each generation's text replaced by the next real text (and its
    grades and verifications pointed at the re-sealed generation) when ``texts`` is given."""
    from msgspec.structs import replace

    from gvstore.records import Generation, seal
    from gvstore.synth import generate

    if texts is None:
        yield from generate(cfg)
        return
    new_id: dict[str, str] = {}
    for i, rec in enumerate(generate(cfg)):
        if isinstance(rec, Generation):
            out = seal(replace(rec, text=texts[i % len(texts)]))
            new_id[rec.id] = out.id
            yield out
        elif hasattr(rec, "generation_id"):
            yield seal(replace(rec, generation_id=new_id[rec.generation_id]))
        else:
            yield rec


def build(root: Path, records_n: int, words: int, flush: int,
          texts: list[str] | None = None) -> dict[str, Any]:
    from gvstore.records import Generation, kind_of
    from gvstore.store import Store
    from gvstore.synth import SynthConfig

    cfg = SynthConfig(prompts=max(1, round(records_n / PER_PROMPT)), samples=SAMPLES,
                      methods=METHODS, seed=11, text_words=words)
    n = chars = gens = 0
    t = time.perf_counter()
    with Store(root).writer("synth", flush_records=flush) as w:
        for rec in records(cfg, texts):
            w.add(rec)
            n += 1
            if kind_of(rec) == "generation":
                assert isinstance(rec, Generation)
                gens += 1
                chars += len(rec.text)
    secs = time.perf_counter() - t
    size, files = du(root)
    return {"records": n, "write_s": secs, "bytes": size, "files": files,
            "text_chars": chars / gens}


def gvstore(*args: str) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run([str(BIN / "gvstore"), *args], capture_output=True, text=True,
                         check=False, env={**os.environ, "GVSTORE_NO_PROGRESS": "1"})
    if out.returncode:
        raise SystemExit(f"gvstore {' '.join(args)} failed: {out.stderr[-2000:]}")
    return time.perf_counter() - t, out.stdout


def measure(work: Path, records: int, words: int, texts: list[str] | None) -> dict[str, Any]:
    root = work / f"store-{records}"
    row = build(root, records, words, 50_000, texts)
    print(f"  built {row['records']:,} records in {row['write_s']:.1f} s "
          f"({row['bytes'] / row['records']:.0f} B/record)", flush=True)
    row["replay"] = run_child("replay", str(root), "0")
    row["cache_build"] = run_child("replay", str(root), "1")
    row["cache_warm"] = run_child("replay", str(root), "1")
    store = ("--store", str(root))
    gvstore("gap", "mc:quantile=0.8", "--json", *store)  # builds the group cache
    gaps = [run_child("proc", str(BIN / "gvstore"), "gap", "mc:quantile=0.8", "--json", *store)
            for _ in range(3)]
    row["gap_s"] = statistics.median(g["s"] for g in gaps)
    row["gap_rss"] = max(g["peak_rss"] for g in gaps)
    row["gap_lib"] = run_child("gap", str(root))
    export = work / f"export-{records}" / "export"
    row["export"] = run_child("proc", str(BIN / "gvstore"), "export", "parquet", str(export),
                              *store)
    row["export_bytes"] = du(export)[0]
    row["duckdb"] = run_child("duckdb", str(export.parent))
    row["duckdb_limited"] = run_child("duckdb", str(export.parent), DUCKDB_LIMIT)
    ref = json.loads(gvstore("gap", "mc:tau=0.5", "--resamples", "0", "--json", *store)[1])
    want = [r["gap"] for r in ref["results"]]
    row["duckdb_agrees"] = len(want) == len(row["duckdb"]["gap"]) and all(
        abs(a - b) < 1e-12 for a, b in zip(want, row["duckdb"]["gap"], strict=True))
    return row


def dvc_round_trip(work: Path, name: str, root: Path) -> dict[str, Any]:
    """dvc add of ``root``'s folder in a git-less DVC project, push to a local remote, then
    pull into an empty cache and workspace; the store must verify clean after."""
    proj = work / f"dvc-{name}"
    shutil.rmtree(proj, ignore_errors=True)
    proj.mkdir()
    shutil.copytree(root, proj / "store", ignore=shutil.ignore_patterns(".cache"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    def dvc(*args: str) -> float:
        t = time.perf_counter()
        subprocess.run(["dvc", *args], cwd=proj, env=env, check=True, capture_output=True)
        return time.perf_counter() - t

    dvc("init", "--no-scm", "-q")
    dvc("remote", "add", "-d", "r", str(proj / "remote"))
    add_s = dvc("add", "-q", "store/synth")
    push_s = dvc("push", "-q")
    shutil.rmtree(proj / ".dvc" / "cache")
    shutil.rmtree(proj / "store" / "synth")
    pull_s = dvc("pull", "-q")
    gvstore("store", "verify", "--store", str(proj / "store"))  # exits 1 if damaged
    files = sum(1 for p in (proj / "remote").rglob("*") if p.is_file())
    return {"files": files, "bytes": du(proj / "store")[0], "add_s": add_s, "push_s": push_s,
            "pull_s": pull_s}


def fit(ns: list[int], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b n (a >= 0 is not forced; with one size: a = 0)."""
    if len(ns) == 1:
        return 0.0, ys[0] / ns[0]
    mn, my = statistics.fmean(ns), statistics.fmean(ys)
    b = sum((n - mn) * (y - my) for n, y in zip(ns, ys, strict=True)) / sum(
        (n - mn) ** 2 for n in ns)
    return my - b * mn, b


FIGURES = {  # name: (unit, how to get it from a size's row)
    "bytes on disk": ("B", lambda r: r["bytes"]),
    "write time": ("s", lambda r: r["write_s"]),
    "replay, cache cold": ("s", lambda r: r["replay"]["s"]),
    "replay peak RSS": ("B", lambda r: r["replay"]["peak_rss"]),
    "projection frames": ("B", lambda r: r["replay"]["frames_bytes"]),
    "cache build (replay + Parquet)": ("s", lambda r: r["cache_build"]["s"]),
    "projections warm load": ("s", lambda r: r["cache_warm"]["s"]),
    "gap, warm (process)": ("s", lambda r: r["gap_s"]),
    "gap, warm (process) peak RSS": ("B", lambda r: r["gap_rss"]),
    "gap, warm (in process)": ("s", lambda r: r["gap_lib"]["s"]),
    "export parquet": ("s", lambda r: r["export"]["s"]),
    "export parquet peak RSS": ("B", lambda r: r["export"]["peak_rss"]),
    "export bytes": ("B", lambda r: r["export_bytes"]),
    "DuckDB gap over export": ("s", lambda r: r["duckdb"]["s"]),
    "DuckDB process peak RSS": ("B", lambda r: r["duckdb"]["peak_rss"]),
    f"DuckDB gap, memory_limit {DUCKDB_LIMIT}": ("s", lambda r: r["duckdb_limited"]["s"]),
    "  its process peak RSS": ("B", lambda r: r["duckdb_limited"]["peak_rss"]),
}


def show(value: float, unit: str) -> str:
    if unit == "B":
        for u, f in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 1024)):
            if abs(value) >= f:
                return f"{value / f:.1f} {u}"
        return f"{value:.0f} B"
    for u, f in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(value) >= f:
            return f"{value / f:.1f} {u}"
    return f"{value:.2f} s"


def report(rows: list[dict[str, Any]]) -> None:
    ns = [r["records"] for r in rows]
    print("\nper size:", ", ".join(f"{n:,}" for n in ns), "records")
    print(f"{'figure':34} {'at each size':42} {'per record':>12} {'fixed':>9} "
          f"{'1e7':>10} {'1e9':>10} {'largest/n':>10}")
    for name, (unit, get) in FIGURES.items():
        ys = [float(get(r)) for r in rows]
        a, b = fit(ns, ys)
        per = f"{b * 1e6:.2f} us" if unit == "s" else f"{b:.1f} B"
        at = " / ".join(show(y, unit) for y in ys)
        ext = [show(a + b * t, unit) for t in TARGETS]
        last = ys[-1] / ns[-1]
        last_s = f"{last * 1e6:.2f} us" if unit == "s" else f"{last:.1f} B"
        print(f"{name:34} {at:42} {per:>12} {show(a, unit):>9} {ext[0]:>10} {ext[1]:>10} "
              f"{last_s:>10}")
    a, b = fit(ns, [float(r["replay"]["frames_bytes"]) for r in rows])
    a2, b2 = fit(ns, [float(r["replay"]["peak_rss"]) for r in rows])
    print(f"\nrecords whose projection frames fill 16 GiB: {(16 * GIB - a) / b:,.0f}; whose "
          f"replay peak RSS reaches 16 GiB: {(16 * GIB - a2) / b2:,.0f}")
    print("DuckDB gap = gvstore gap mc:tau=0.5 to 1e-12 at every size:",
          all(r["duckdb_agrees"] for r in rows), "; the same under the memory limit:",
          all(abs(a - b) < 1e-12 for r in rows for a, b in
              zip(r["duckdb"]["gap"], r["duckdb_limited"]["gap"], strict=True)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1e4,1e5,1e6", help="records per store, comma-separated")
    ap.add_argument("--words", type=int, default=100, help="words per synthetic answer")
    ap.add_argument("--texts", type=Path, default=None,
                    help="JSON lines with an 'answer' field (e.g. GSM8K's train.jsonl): real "
                    "texts of about --words words as the generations' texts")
    ap.add_argument("--dvc", action="store_true", help="also time dvc push / pull")
    ap.add_argument("--small-segment", type=int, default=160,
                    help="records per segment of the small-segment store (--dvc)")
    ap.add_argument("--small-size", type=int, default=1_000_000,
                    help="records of the small-segment store (at most the largest size)")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # a JSON list: what to measure
    args = ap.parse_args()
    if args.child:
        kind, path, *rest = json.loads(args.child)
        got = (child_replay(Path(path), rest == ["1"]) if kind == "replay"
               else child_gap(Path(path)) if kind == "gap"
               else child_proc(path, *rest) if kind == "proc"
               else child_duckdb(Path(path), *rest))
        print(json.dumps(got))
        return 0
    work = Path(args.dir or tempfile.mkdtemp(prefix="gvstore-scale-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sizes = sorted(int(float(s)) for s in args.sizes.split(","))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GIB:.0f} GiB, python "
          f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"work dir {work}", flush=True)
    rows = []
    texts = real_texts(args.texts, args.words)
    for n in sizes:
        print(f"size {n:,}", flush=True)
        rows.append(measure(work, n, args.words, texts))
    kind = f"real texts from {args.texts}" if texts else "synthetic word salad"
    print(f"\ngeneration texts: {rows[-1]['text_chars']:.0f} characters on average (about "
          f"{args.words} words, {kind}); {SAMPLES} samples per prompt; methods "
          f"{', '.join(METHODS)}")
    report(rows)
    if args.dvc:
        dvc_report(work, rows, sizes, args)
    return 0


def dvc_report(work: Path, rows: list[dict[str, Any]], sizes: list[int],
               args: argparse.Namespace) -> None:
    big = rows[-1]
    print("\nDVC (local-folder remote; dvc add, push, then pull into an empty cache):")
    cases = [(f"{big['records']:,} records, {big['files'] - 1} segments",
              work / f"store-{sizes[-1]}")]
    small = work / "store-small"
    built = build(small, min(sizes[-1], args.small_size), args.words, args.small_segment,
                  real_texts(args.texts, args.words))
    cases.append((f"{built['records']:,} records, {built['files'] - 1} small segments", small))
    for label, root in cases[:2]:
        d = dvc_round_trip(work, label.split()[0], root)
        print(f"  {label}: {show(d['bytes'], 'B')}, {d['files']} remote files; add "
              f"{d['add_s']:.1f} s, push {d['push_s']:.1f} s, pull {d['pull_s']:.1f} s")
    t, _ = gvstore("store", "compact", "--quiet", "--store", str(small))
    segs = sum(1 for _ in (small / "synth").glob("*.jsonl.zst"))
    d = dvc_round_trip(work, "compacted", small)
    print(f"  the same after gvstore store compact ({t:.1f} s, {segs} segments): "
          f"{d['files']} remote files; add {d['add_s']:.1f} s, push {d['push_s']:.1f} s, "
          f"pull {d['pull_s']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
