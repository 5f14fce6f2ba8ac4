"""Analysis benchmark: the vectorised gap, sweep, ensemble and pass@k against a plain loop.

Builds (once; cached under ``.bench/``) a synthetic store of 7,500 prompts x 128 samples =
960,000 generations with mc, cot_binary, cot_score and tournament verifications, loads its
projections warm (Parquet cache), and times side by side in one run:

  * one gap (``mc:quantile=0.8``, 1000 bootstrap resamples),
  * a 100-point threshold sweep (``mc:tau`` at 100 values in [0, 1], with intervals),
  * an ``and`` ensemble (``and(mc:quantile=0.8,cot_binary:tau=1)``),
  * pass@k for k = 1..128,

each through the library (a fresh ``Dataset`` per call, so frame building is included) and
through the obvious per-prompt loop in plain Python (dicts and lists; its data preparation
from the same projections is included in each figure). The loop runs on a seeded random 10%
of the prompts and its time is extrapolated linearly to all prompts (it is linear in the
prompts); on that subset both give the same per-prompt values and means to 1e-9.

    python benchmarks/analysis_bench.py            # full size (store build ~2 min, once)
    python benchmarks/analysis_bench.py --prompts 750 --samples 128   # quick look
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gvstore.analysis.frames import Dataset, base_frame
from gvstore.analysis.gap import Graded, gap_table
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
             rng: random.Random) -> tuple[float, dict[int, float]]:
    per: dict[int, float] = {}
    for p, samples in data.items():
        w = [1.0] * len(samples)
        for leaf in leaves:
            w = [a * b for a, b in zip(w, loop_weights(samples, leaf), strict=True)]
        acc, acc_w = loop_prompt(samples, w)
        per[p] = acc_w - acc
    diffs = list(per.values())
    boots = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs)
                   for _ in range(RESAMPLES))
    _ = (boots[int(0.025 * RESAMPLES)], boots[int(0.975 * RESAMPLES) - 1])
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


# --- the library --------------------------------------------------------------------------


def lib_gap(proj: Projections, spec: str) -> float:
    return gap_table(Dataset(proj), [parse(spec)], resamples=RESAMPLES)[0].gap


def lib_sweep(proj: Projections) -> list[float]:
    res = sweep(Dataset(proj), parse_template("mc:tau"), SWEEP_VALUES, resamples=RESAMPLES)
    return [p.gap for p in res[0].points]


def lib_passk(proj: Projections) -> Any:
    from gvstore.analysis.passk import pass_at_k_table

    return pass_at_k_table(base_frame(proj), KS, by=())


def lib_per_prompt(proj: Projections, spec: str) -> dict[int, float]:
    """Per-prompt acc_w - acc from the library, for the value check."""
    g = Dataset(proj).groups(("mc", "cot_binary"))[0]
    st = Graded(g).stats(Weigher(g).weights(parse(spec)))
    return dict(zip(g.prompts.tolist(), st.diff.tolist(), strict=True))


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
    warm_load, _ = best_of(lambda: Projections(Store(root)).load(), 1)
    n_gen = frames["generations"].height
    print(f"store: {root}  ({n_gen} generations, {frames['verifications'].height} "
          f"verifications, {frames['comparisons'].height} matches)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}")
    print(f"projections: first load {cold:.2f} s ({'rebuilt' if proj.rebuilt else 'cache'}), "
          f"warm load {warm_load:.2f} s (not counted below)\n")

    lib: dict[str, tuple[float, Any]] = {}
    lib["one gap"] = best_of(lambda: lib_gap(proj, GAP_SPEC))
    lib["100-point sweep"] = best_of(lambda: lib_sweep(proj))
    lib["and ensemble"] = best_of(lambda: lib_gap(proj, AND_SPEC))
    lib["pass@k k=1..128"] = best_of(lambda: lib_passk(proj))

    prompts = sorted(set(frames["generations"]["prompt"].to_list()))
    keep = set(random.Random(0).sample(prompts, max(1, int(len(prompts) * args.subset))))
    scale = len(prompts) / len(keep)
    # The loop's data preparation reads every record whatever the subset, so it is timed on
    # all prompts (not extrapolated); only the per-prompt computation runs on the subset.
    prep_t, full = best_of(lambda: loop_prepare(proj, set(prompts)), 1)
    data = {p: full[p] for p in keep}
    del full
    loop: dict[str, tuple[float, Any]] = {}
    loop["one gap"] = best_of(
        lambda: loop_gap(data, [("mc", "quantile", 0.8)], random.Random(0)), 1)
    loop["100-point sweep"] = best_of(lambda: loop_sweep(data), 1)
    loop["and ensemble"] = best_of(
        lambda: loop_gap(data, [("mc", "quantile", 0.8), ("cot_binary", "tau", 1.0)],
                         random.Random(0)), 1)
    loop["pass@k k=1..128"] = best_of(lambda: loop_passk(data), 1)

    # Same numbers: the loop's per-prompt gaps against the library's, on the subset.
    worst = 0.0
    for spec, key in ((GAP_SPEC, "one gap"), (AND_SPEC, "and ensemble")):
        per_lib = lib_per_prompt(proj, spec)
        per_loop = loop[key][1][1]
        for p, d in per_loop.items():
            worst = max(worst, abs(d - per_lib[p]))
        sub_mean = sum(per_lib[p] for p in per_loop) / len(per_loop)
        worst = max(worst, abs(sub_mean - loop[key][1][0]))
    g = Dataset(proj).groups(("mc",))[0]
    graded = Graded(g)
    sub_rows = np.array([p in keep for p in g.prompts.tolist()])
    weigher = Weigher(g)
    tau = parse_template("mc:tau")
    for j, v in enumerate(SWEEP_VALUES):
        st = graded.stats(weigher.apply(tau, Rule("tau", v)))
        worst = max(worst, abs(float(st.diff[sub_rows].mean()) - loop["100-point sweep"][1][j]))
    # pass@k on the subset through the library's per-prompt formula
    from gvstore.analysis.passk import pass_at_k_table

    bf = base_frame(proj)
    sub = bf.filter(bf["prompt"].is_in(list(keep)))
    lib_sub = pass_at_k_table(sub, KS, by=())["pass_at_k"].to_list()
    worst = max(worst, max(abs(a - b) for a, b in zip(lib_sub, loop["pass@k k=1..128"][1],
                                                       strict=True)))
    # full-size library means agree with the subset only statistically: not compared.

    print(f"plain loop: data preparation (projections -> per-prompt Python lists) "
          f"{prep_t:.2f} s on all prompts, counted once in every loop figure (the library's "
          f"figures include its own frame building); per-prompt computation timed on a "
          f"random {len(keep)} of {len(prompts)} prompts ({100 / scale:.0f}%) and "
          f"extrapolated x{scale:.1f}")
    print(f"{'':<18}{'library (s)':>12}{'loop compute':>14}{'loop total':>12}"
          f"{'speed-up':>10}{'vs compute':>14}{'target':>10}")
    targets = {"one gap": "< 0.5 s", "100-point sweep": "< 5 s"}
    for key in lib:
        lt = lib[key][0]
        ct = loop[key][0] * scale
        ot = ct + prep_t
        print(f"{key:<18}{lt:>12.3f}{ct:>14.2f}{ot:>12.2f}{ot / lt:>9.0f}x{ct / lt:>13.0f}x"
              f"{targets.get(key, '>= 20x'):>10}")
    print(f"\nlargest difference loop vs library (per-prompt gaps, subset means, sweep points, "
          f"pass@k): {worst:.2e} ({'OK' if worst <= 1e-9 else 'MISMATCH'} at 1e-9)")
    print(f"library values (all prompts): gap {lib['one gap'][1]:.6f}, and-ensemble gap "
          f"{lib['and ensemble'][1]:.6f}, sweep gap at tau={SWEEP_VALUES[50]:.4f} "
          f"{lib['100-point sweep'][1][50]:.6f}")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
