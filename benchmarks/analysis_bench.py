"""Analysis benchmark: gvstore's gap, sweep, ensemble and pass@k against what a user would
write instead (a polars pipeline, a DuckDB query) and against a plain loop.

Builds (once; cached under ``.bench/``) a synthetic store of 7,500 prompts x 128 samples =
960,000 generations with mc, cot_binary, cot_score and tournament verifications, warms its
projections (Parquet cache) and gvstore's group cache, and times side by side in one run:

  * one gap (``mc:quantile=0.8``): point estimate, and with 1000 bootstrap resamples,
  * a 100-point threshold sweep (``mc:tau`` at 100 values in [0, 1], with intervals),
  * an ``and`` ensemble (``and(mc:quantile=0.8,cot_binary:tau=1)``, 1000 resamples),
  * pass@k for k = 1..128,
  * the whole process: ``gvstore gap mc:quantile=0.8 --resamples 0`` against ``python -c``
    running the DuckDB query.

gvstore runs as a command does: a fresh ``Projections`` and ``Dataset`` per call, the
bootstrap draws not kept in memory between calls (read from the group cache). The polars
pipeline and the DuckDB query (``benchmarks/rival_queries.py``) read the same warm
projection Parquet files per call; they compute the point estimate only (no bootstrap) and,
for the sweep, the 100 point estimates. The plain loop (dicts and lists) runs on a seeded
random 10% of the prompts and its time is extrapolated linearly (its data preparation from
the projections is timed on all prompts and counted in every loop figure). All agree: the
loop with the library per prompt on the subset, polars and DuckDB with the library on all
prompts, to 1e-9 (checked and printed).

    python benchmarks/analysis_bench.py            # full size (store build ~2 min, once)
    python benchmarks/analysis_bench.py --prompts 750 --samples 128   # quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rival_queries

from gvstore.analysis.frames import Dataset, base_frame
from gvstore.analysis.gap import Graded, draw_counts, gap_table
from gvstore.analysis.specs import Rule, parse, parse_template
from gvstore.analysis.sweep import sweep
from gvstore.analysis.weights import Weigher
from gvstore.replay import Projections
from gvstore.store import Store
from gvstore.synth import SynthConfig, generate

METHODS = ("mc", "cot_binary", "cot_score", "tournament")
GAP_SPEC = "mc:quantile=0.8"
AND_SPEC = "and(mc:quantile=0.8,cot_binary:tau=1)"
SWEEP_VALUES = [round(float(v), 10) for v in np.linspace(0.0, 1.0, 100)]
KS = list(range(1, 129))
RESAMPLES = 1000


def build(root: Path, prompts: int, samples: int, seed: int) -> None:
    done = root / ".complete"
    if done.exists():
        return
    print(f"building {prompts} x {samples} synthetic store under {root} (once) ...", flush=True)
    t = time.perf_counter()
    cfg = SynthConfig(prompts=prompts, samples=samples, methods=METHODS, seed=seed)
    with Store(root).writer("synth", flush_records=50_000) as w:
        for rec in generate(cfg):
            w.add(rec)
    done.write_text("ok\n")
    print(f"  built in {time.perf_counter() - t:.0f} s", flush=True)


def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


# --- the obvious loop ---------------------------------------------------------------------


def loop_prepare(proj: Projections, keep: set[int]) -> dict[int, list[list[Any]]]:
    """prompt -> list of [utility, {method: score}] in (sample_index, gen) order."""
    grades = dict(zip(proj.grades["gen"].to_list(), proj.grades["strict"].to_list(),
                      strict=True))
    scores: dict[int, dict[str, float | None]] = {}
    v = proj.verifications
    for g, m, s in zip(v["gen"].to_list(), v["method"].to_list(), v["score"].to_list(),
                       strict=True):
        scores.setdefault(g, {})[m] = s
    rows: dict[int, list[tuple[int, int, list[Any]]]] = {}
    gens = proj.generations
    for g, p, i in zip(gens["gen"].to_list(), gens["prompt"].to_list(),
                       gens["sample_index"].to_list(), strict=True):
        if p in keep:
            rows.setdefault(p, []).append((i, g, [grades.get(g), scores.get(g, {})]))
    return {p: [r for _, _, r in sorted(v)] for p, v in rows.items()}


def loop_weights(samples: list[list[Any]], leaf: tuple[str, str, float]) -> list[float]:
    method, kind, value = leaf
    ss = [x[1].get(method) for x in samples]
    if kind == "tau":
        return [1.0 if s is not None and s >= value else 0.0 for s in ss]
    scored = sorted(s for s in ss if s is not None)
    if not scored:
        return [0.0] * len(ss)
    k = min(max(math.ceil(value * (len(scored) - 1) - 1e-9), 0), len(scored) - 1)
    thr = scored[k]
    return [1.0 if s is not None and s >= thr else 0.0 for s in ss]


def loop_prompt(samples: list[list[Any]], w: list[float]) -> tuple[float, float]:
    us = [x[0] for x in samples]
    acc = sum(us) / len(us)
    sw = sum(w)
    acc_w = sum(a * b for a, b in zip(w, us, strict=True)) / sw if sw > 0 else acc
    return acc, acc_w


def loop_gap(data: dict[int, list[list[Any]]], leaves: list[tuple[str, str, float]],
             rng: random.Random, resamples: int = RESAMPLES) -> tuple[float, dict[int, float]]:
    per: dict[int, float] = {}
    for p, samples in data.items():
        w = [1.0] * len(samples)
        for leaf in leaves:
            w = [a * b for a, b in zip(w, loop_weights(samples, leaf), strict=True)]
        acc, acc_w = loop_prompt(samples, w)
        per[p] = acc_w - acc
    diffs = list(per.values())
    if resamples:
        boots = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs)
                       for _ in range(resamples))
        _ = (boots[int(0.025 * resamples)], boots[int(0.975 * resamples) - 1])
    return sum(diffs) / len(diffs), per


def loop_sweep(data: dict[int, list[list[Any]]]) -> list[float]:
    out = []
    rng = random.Random(0)
    for v in SWEEP_VALUES:
        out.append(loop_gap(data, [("mc", "tau", v)], rng)[0])
    return out


def loop_passk(data: dict[int, list[list[Any]]]) -> list[float]:
    sums = [0.0] * len(KS)
    for samples in data.values():
        n = len(samples)
        c = sum(1 for x in samples if x[0] >= 1.0)
        for j, k in enumerate(KS):
            sums[j] += 1.0 - (math.comb(n - c, k) / math.comb(n, k) if n - c >= k else 0.0)
    return [s / len(data) for s in sums]


# --- the library, as a command runs it ------------------------------------------------------


def fresh(root: Path) -> Dataset:
    """A new projections object and dataset (what a CLI call starts from); the bootstrap
    draws are not kept in memory from an earlier call."""
    draw_counts.cache_clear()
    return Dataset(Projections(Store(root)))


def lib_gap(root: Path, spec: str, resamples: int = RESAMPLES) -> float:
    return gap_table(fresh(root), [parse(spec)], resamples=resamples)[0].gap


def lib_sweep(root: Path) -> list[float]:
    res = sweep(fresh(root), parse_template("mc:tau"), SWEEP_VALUES, resamples=RESAMPLES)
    return [p.gap for p in res[0].points]


def lib_passk(root: Path) -> Any:
    from gvstore.analysis.passk import pass_at_k_table

    return pass_at_k_table(fresh(root).base_frame(), KS, by=())


def lib_per_prompt(root: Path, spec: str) -> dict[int, float]:
    """Per-prompt acc_w - acc from the library, for the value check."""
    g = fresh(root).groups(("mc", "cot_binary"))[0]
    st = Graded(g).stats(Weigher(g).weights(parse(spec)))
    return dict(zip(g.prompts.tolist(), st.diff.tolist(), strict=True))


def gvstore_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("gvstore")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gvstore"]


def processes(root: Path, files: dict[str, str], repeat: int = 5) -> tuple[float, float]:
    """Median wall time of the whole ``gvstore gap mc:quantile=0.8 --resamples 0`` process
    (printing its table) and of ``python -c`` running the DuckDB query, interleaved; the two
    gaps are compared once more with ``--json``."""
    gv = gvstore_cmd() + ["--store", str(root), "gap", GAP_SPEC, "--resamples", "0"]
    dk = [sys.executable, "-c", rival_queries.duckdb_script(files, 0.8)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "160"}
    times: dict[str, list[float]] = {"gv": [], "dk": []}
    outs: dict[str, str] = {}
    for _ in range(repeat):
        for name, cmd in (("gv", gv), ("dk", dk)):
            t = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            times[name].append(time.perf_counter() - t)
            outs[name] = out.stdout
    js = subprocess.run(gv + ["--json"], capture_output=True, text=True, env=env, check=True)
    gap_gv = json.loads(js.stdout)["results"][0]["gap"]
    if abs(gap_gv - float(outs["dk"])) > 1e-9:
        raise SystemExit(f"whole-process gaps differ: gvstore {gap_gv}, duckdb {outs['dk']}")
    return statistics.median(times["gv"]), statistics.median(times["dk"])


Row = tuple[str, float, float | None, float | None, float | None, str]

CHECKS: dict[str, Callable[[Row], bool]] = {
    "one gap (point)": lambda r: r[1] < 0.030 and all(
        x is not None and x / r[1] >= k for x, k in ((r[2], 3), (r[3], 3), (r[4], 100))),
    "one gap, 1000 resamples": lambda r: r[1] < 0.100,
    "100-point sweep + CI": lambda r: r[1] < 1.0,
    "whole process gap": lambda r: r[3] is not None and r[3] / r[1] >= 1.5,
}


def table(rows: list[Row]) -> None:
    """One line per measure: times, gvstore's speed-up over each rival, its target."""
    def t(x: float | None) -> str:
        return f"{x:>9.3f}" if x is not None else f"{'-':>9}"

    def r(x: float | None, lt: float) -> str:
        return f"{x / lt:>9.1f}x" if x is not None else f"{'-':>10}"

    print(f"{'seconds':<24}{'gvstore':>9}{'polars':>9}{'duckdb':>9}{'loop':>9}"
          f"{'vs polars':>10}{'vs duckdb':>10}{'vs loop':>10}  target")
    for row in rows:
        name, lt, pt, dt, ot, target = row
        mark = ("" if name not in CHECKS else "  [met]" if CHECKS[name](row) else "  [MISSED]")
        print(f"{name:<24}{t(lt)}{t(pt)}{t(dt)}{t(ot)}{r(pt, lt)}{r(dt, lt)}{r(ot, lt)}  "
              f"{target}{mark}")


def measure_library(root: Path) -> dict[str, tuple[float, Any]]:
    """gvstore's figures, each a fresh dataset (after one warm-up that fills the group
    cache; its time is printed)."""
    t = time.perf_counter()
    lib_gap(root, AND_SPEC)
    lib_sweep(root)
    print(f"group cache: first calls {time.perf_counter() - t:.2f} s (build or check)")
    lib: dict[str, tuple[float, Any]] = {}
    lib["one gap (point)"] = best_of(lambda: lib_gap(root, GAP_SPEC, 0), 7)
    lib["one gap, 1000 resamples"] = best_of(lambda: lib_gap(root, GAP_SPEC), 7)
    lib["100-point sweep + CI"] = best_of(lambda: lib_sweep(root))
    lib["and ensemble, 1000 res."] = best_of(lambda: lib_gap(root, AND_SPEC), 5)
    lib["pass@k k=1..128"] = best_of(lambda: lib_passk(root))
    return lib


def measure_loop(proj: Projections, prompts: list[int], keep: set[int]
                 ) -> tuple[float, dict[str, tuple[float, Any]]]:
    # The loop's data preparation reads every record whatever the subset, so it is timed on
    # all prompts (not extrapolated); only the per-prompt computation runs on the subset.
    prep_t, full = best_of(lambda: loop_prepare(proj, set(prompts)), 1)
    data = {p: full[p] for p in keep}
    del full
    q8 = [("mc", "quantile", 0.8)]
    loop: dict[str, tuple[float, Any]] = {}
    loop["one gap (point)"] = best_of(lambda: loop_gap(data, q8, random.Random(0), 0), 1)
    loop["one gap, 1000 resamples"] = best_of(lambda: loop_gap(data, q8, random.Random(0)), 1)
    loop["100-point sweep + CI"] = best_of(lambda: loop_sweep(data), 1)
    loop["and ensemble, 1000 res."] = best_of(
        lambda: loop_gap(data, q8 + [("cot_binary", "tau", 1.0)], random.Random(0)), 1)
    loop["pass@k k=1..128"] = best_of(lambda: loop_passk(data), 1)
    return prep_t, loop


def check_loop(root: Path, proj: Projections, keep: set[int],
               loop: dict[str, tuple[float, Any]]) -> float:
    """The largest difference between the loop and the library on the loop's subset."""
    worst = 0.0
    for spec, key in ((GAP_SPEC, "one gap (point)"), (AND_SPEC, "and ensemble, 1000 res.")):
        per_lib = lib_per_prompt(root, spec)
        per_loop = loop[key][1][1]
        for p, d in per_loop.items():
            worst = max(worst, abs(d - per_lib[p]))
        sub_mean = sum(per_lib[p] for p in per_loop) / len(per_loop)
        worst = max(worst, abs(sub_mean - loop[key][1][0]))
    g = fresh(root).groups(("mc",))[0]
    graded = Graded(g)
    sub_rows = np.array([p in keep for p in g.prompts.tolist()])
    weigher = Weigher(g)
    tau = parse_template("mc:tau")
    for j, v in enumerate(SWEEP_VALUES):
        st = graded.stats(weigher.apply(tau, Rule("tau", v)))
        worst = max(worst, abs(float(st.diff[sub_rows].mean())
                               - loop["100-point sweep + CI"][1][j]))
    from gvstore.analysis.passk import pass_at_k_table

    bf = base_frame(proj)
    sub = bf.filter(bf["prompt"].is_in(list(keep)))
    lib_sub = pass_at_k_table(sub, KS, by=())["pass_at_k"].to_list()
    return max(worst, max(abs(a - b) for a, b in zip(lib_sub, loop["pass@k k=1..128"][1],
                                                      strict=True)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=7500)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--subset", type=float, default=0.1,
                    help="share of prompts the plain loop runs on (time extrapolated)")
    ap.add_argument("--dir", type=Path, default=Path(".bench"))
    args = ap.parse_args(argv)

    root = args.dir / f"analysis-{args.prompts}x{args.samples}-s{args.seed}"
    build(root, args.prompts, args.samples, args.seed)
    proj = Projections(Store(root))
    t = time.perf_counter()
    frames = proj.load()
    cold = time.perf_counter() - t
    assert proj.cache_dir is not None, "the projections could not be cached"
    files = rival_queries.parquet_files(proj.cache_dir, proj.cache_key())
    print(f"store: {root}  ({frames['generations'].height} generations, "
          f"{frames['verifications'].height} verifications, {frames['comparisons'].height} "
          f"matches)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}")
    print(f"projections: first load {cold:.2f} s ({'rebuilt' if proj.rebuilt else 'cache'})")

    lib = measure_library(root)
    pol = {"one gap (point)": best_of(lambda: rival_queries.polars_gap(files, 0.8)),
           "100-point sweep + CI": best_of(lambda: rival_queries.polars_sweep(files,
                                                                              SWEEP_VALUES))}
    duck = {"one gap (point)": best_of(lambda: rival_queries.duckdb_gap(files, 0.8)),
            "100-point sweep + CI": best_of(lambda: rival_queries.duckdb_sweep(files,
                                                                               SWEEP_VALUES))}
    proc_gv, proc_dk = processes(root, files)

    prompts = sorted(set(frames["generations"]["prompt"].to_list()))
    keep = set(random.Random(0).sample(prompts, max(1, int(len(prompts) * args.subset))))
    scale = len(prompts) / len(keep)
    prep_t, loop = measure_loop(proj, prompts, keep)
    worst_loop = check_loop(root, proj, keep, loop)
    point = lib["one gap (point)"][1]
    worst_rivals = max(abs(pol["one gap (point)"][1] - point),
                       abs(duck["one gap (point)"][1] - point),
                       max(abs(a - b) for a, b in zip(pol["100-point sweep + CI"][1],
                                                      lib["100-point sweep + CI"][1],
                                                      strict=True)),
                       max(abs(a - b) for a, b in zip(duck["100-point sweep + CI"][1],
                                                      lib["100-point sweep + CI"][1],
                                                      strict=True)))

    print(f"\nplain loop: data preparation {prep_t:.2f} s on all prompts, counted in every "
          f"loop figure; per-prompt computation on a random {len(keep)} of {len(prompts)} "
          f"prompts, extrapolated x{scale:.1f}. polars and duckdb: point estimates only "
          f"(no bootstrap), reading the Parquet each call.\n")
    targets = {"one gap (point)": "< 0.030, >= 3x polars & duckdb, >= 100x loop",
               "one gap, 1000 resamples": "< 0.100",
               "100-point sweep + CI": "< 1"}
    rows: list[Row] = []
    for key, (lt, _) in lib.items():
        rows.append((key, lt, pol.get(key, (None,))[0], duck.get(key, (None,))[0],
                     loop[key][0] * scale + prep_t, targets.get(key, "")))
    rows.append(("whole process gap", proc_gv, None, proc_dk, None,
                 ">= 1.5x the duckdb script"))
    table(rows)
    print(f"(a shared machine gives noisy figures: load average now "
          f"{os.getloadavg()[0]:.2f})")
    ok = worst_loop <= 1e-9 and worst_rivals <= 1e-9
    print(f"\nlargest difference: loop vs library {worst_loop:.2e} (per-prompt gaps, subset "
          f"means, sweep points, pass@k); polars and duckdb vs library {worst_rivals:.2e} "
          f"(gap, 100 sweep points): {'OK' if ok else 'MISMATCH'} at 1e-9")
    print(f"values (all prompts): gap {point:.6f} (polars {pol['one gap (point)'][1]:.6f}, "
          f"duckdb {duck['one gap (point)'][1]:.6f}), and-ensemble gap "
          f"{lib['and ensemble, 1000 res.'][1]:.6f}, sweep gap at tau={SWEEP_VALUES[50]:.4f} "
          f"{lib['100-point sweep + CI'][1][50]:.6f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
