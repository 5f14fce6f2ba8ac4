"""Store benchmark: write and replay 1M generation + 1M verification records.

Measures, side by side in one run on this machine:
  * records/s written (encode + zstd + digest + fsync + rename) by ``Store.writer``,
  * records/s replayed cold (segment digest check + decompress + decode + dedupe by id),
  * the key scan behind ``missing()`` and a cold projection build,
  * warm projection load (Parquet cache) of the 2M records,
  * bytes per record on disk,
and the same figures for a plain ``json`` + ``gzip`` baseline written the obvious way
(``json.dumps`` per record into ``gzip.open``; replay: ``json.loads`` per line, dedupe by id),
printed as ratios. The records are synthetic (``gvstore.synth``: word-salad texts of
``--words`` words ending in an answer line); both sides write exactly the same records.

    python benchmarks/store_bench.py            # full size (about 3 minutes here)
    python benchmarks/store_bench.py --n 100000 # quick look
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from gvstore.records import Generation, Record, Verification
from gvstore.replay import Projections
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate


def chunks(n_each: int, words: int, size: int) -> Iterator[list[Record]]:
    """Generation and verification records (n_each of each), in chunks of about ``size``."""
    samples = 128
    cfg = SynthConfig(prompts=-(-n_each // samples), samples=samples, methods=("mc",),
                      seed=7, text_words=words)
    buf: list[Record] = []
    counts = {Generation: 0, Verification: 0}
    for rec in generate(cfg):
        t = type(rec)
        if t in counts and counts[t] < n_each:  # type: ignore[index]
            counts[t] += 1  # type: ignore[index]
            buf.append(rec)
            if len(buf) >= size:
                yield buf
                buf = []
    if buf:
        yield buf


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="records of each kind")
    ap.add_argument("--words", type=int, default=100, help="words per synthetic answer")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="gvstore-bench-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    root, base = work / "store", work / "baseline.jsonl.gz"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; {2 * args.n:,} records; work dir {work}")

    # --- write -----------------------------------------------------------------------------
    store = Store(root)
    t_store = t_base = 0.0
    total = raw_json = 0
    with store.writer("bench", flush_seconds=3600) as w, \
            gzip.open(base, "wt", encoding="utf-8") as gz:
        for chunk in chunks(args.n, args.words, 100_000):
            dicts = [msgspec.to_builtins(r) for r in chunk]  # the baseline starts from dicts
            t0 = time.perf_counter()
            for r in chunk:
                w.add(r)
            t_store += time.perf_counter() - t0
            t0 = time.perf_counter()
            for d in dicts:
                gz.write(json.dumps(d) + "\n")
            t_base += time.perf_counter() - t0
            raw_json += sum(len(json.dumps(d).encode()) + 1 for d in dicts)
            total += len(chunk)
        t0 = time.perf_counter()
        w.flush()
        t_store += time.perf_counter() - t0
    store_bytes, base_bytes = du(root), base.stat().st_size

    # --- replay, cold (no projection cache) ---------------------------------------------------
    t0 = time.perf_counter()
    n_store = len(store.records())
    t_replay = time.perf_counter() - t0

    t0 = time.perf_counter()
    seen: set[str] = set()
    n_base = 0
    with gzip.open(base, "rt", encoding="utf-8") as gz:
        for line in gz:
            d = json.loads(line)
            if d["id"] not in seen:
                seen.add(d["id"])
                n_base += 1
    t_base_replay = time.perf_counter() - t0
    assert n_store == n_base == total, (n_store, n_base, total)

    t0 = time.perf_counter()
    n_keys = len(store.keys())
    t_keys = time.perf_counter() - t0

    t0 = time.perf_counter()
    Projections(store).load()
    t_build = time.perf_counter() - t0

    # --- projections, warm -----------------------------------------------------------------
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        frames = Projections(store).load()
        warm.append(time.perf_counter() - t0)
    n_proj = frames["generations"].height + frames["verifications"].height
    assert n_proj == total

    # --- report ----------------------------------------------------------------------------
    def row(name: str, store_v: float, base_v: float | None, unit: str, better: str) -> None:
        if base_v is None:
            print(f"  {name:<34} {store_v:>14,.2f} {unit:<10}")
            return
        ratio = store_v / base_v if better == "higher" else base_v / store_v
        print(f"  {name:<34} {store_v:>14,.2f} {base_v:>14,.2f} {unit:<10} {ratio:>6.2f}x")

    print(f"\n  {'':<34} {'gvstore':>14} {'json+gzip':>14} {'unit':<10} {'better by':>7}")
    row("write", total / t_store, total / t_base, "records/s", "higher")
    row("replay cold (decode + digest)", n_store / t_replay, n_base / t_base_replay,
        "records/s", "higher")
    row("bytes per record on disk", store_bytes / total, base_bytes / total, "bytes", "lower")
    row("key scan (missing)", n_keys / t_keys, None, "keys/s", "higher")
    row("projection build, cold", t_build, None, "s", "lower")
    row("projection load, warm (best of 3)", min(warm), None, "s", "lower")
    print(f"\n  raw JSON: {raw_json / total:,.1f} bytes/record; store is "
          f"1/{raw_json / store_bytes:.2f} of raw JSON, json+gzip is 1/{raw_json / base_bytes:.2f}")
    print(f"  targets: replay >= 500,000 records/s: "
          f"{'met' if n_store / t_replay >= 500_000 else 'NOT met'}; warm projection < 1 s: "
          f"{'met' if min(warm) < 1 else 'NOT met'}; store <= 1/4 of raw JSON: "
          f"{'met' if store_bytes * 4 <= raw_json else 'NOT met'}")
    if args.dir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
