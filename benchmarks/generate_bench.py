"""Generate benchmark: the CPU engines side by side, what the store costs, how batch size pays.

Measured side by side in one run on this machine, on the embedded SmolLM2-135M-Instruct
(prepared to safetensors first), the same `arith` prompts, seeds and batch layout, for each
CPU engine (``transformers`` fp32, ``ctranslate2`` int8, ``ctranslate2-float32``):

  * tokens/s of the generate step (``gvstore.steps.generate.run``: plan keys, ask the store what is
    missing, sample, write records) at batch 8 against the engine's bare loop over the same
    batches (``model.generate``; ``Generator.generate_batch`` on one loaded generator);
    repetitions are interleaved and the median taken (the machine is shared);
  * tokens/s of the generate step at batch sizes 1, 8 and 32;
  * log-likelihood scoring (the ``mc`` verifier's calls: two continuations per prompt);
  * ratios: each engine against transformers, and step / bare loop.

    python benchmarks/generate_bench.py [--prompts 16] [--max-tokens 48] [--reps 2]
        [--engines transformers,ctranslate2,ctranslate2-float32]

Under load (``--load N``): samples/s of the generate step with no competing process and with N
busy-loop processes this script starts itself, for gvstore's CPU policy (OpenMP's passive wait
policy, threads = the CPUs this process may use; gvstore/backends/threads.py), for torch's
old defaults (active spinning) and for the ctranslate2 back end (same policy), side by side.
Each policy runs in its own process (OpenMP reads its wait policy once, when it is loaded);
the unloaded and loaded runs of all policies are interleaved and the median taken. Target:
loaded >= 40% of unloaded.

    python benchmarks/generate_bench.py --load 1 [--prompts 16] [--max-tokens 32] [--reps 3]
        [--policies gvstore,torch-default,ctranslate2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The old-default child must import torch before gvstore sets the wait policy.
WAIT_AT_TORCH_IMPORT: str | None = None
if "--child" in sys.argv and "torch-default" in sys.argv:
    WAIT_AT_TORCH_IMPORT = "(unset)"
    for _key in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GVSTORE_THREADS"):
        os.environ.pop(_key, None)
    import torch  # noqa: F401

from gvstore.backends import LoglikRequest, get_backend  # noqa: E402
from gvstore.backends.base import Backend  # noqa: E402
from gvstore.backends.hf import TransformersBackend, batch_seed  # noqa: E402
from gvstore.models import SMOLLM2, prepare  # noqa: E402
from gvstore.records import Sampling, seal  # noqa: E402
from gvstore.steps import generate  # noqa: E402
from gvstore.store import Store  # noqa: E402
from gvstore.tasks.registry import get_task  # noqa: E402


def bare_loop(backend: TransformersBackend, batches: list[list[generate.Request]],
              sp: Sampling) -> int:
    """The obvious loop: tokenise, model.generate, decode; no store, no records."""
    import torch

    tok, lm = backend.tokenizer, backend.lm
    tok.padding_side = "left"
    tokens = 0
    for batch in batches:
        texts = [backend.render(r.prompt.text) for r in batch]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(generate_seed(batch))
        with torch.inference_mode():
            out = lm.generate(**enc, max_new_tokens=sp.max_tokens, do_sample=True,
                              temperature=sp.temperature, top_p=sp.top_p, top_k=sp.top_k,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            n = len(row)
            for j, t in enumerate(row):
                if t == tok.eos_token_id:
                    n = j
                    break
            tokens += n
            tok.decode(row[:n], skip_special_tokens=True)
    return tokens


def generate_seed(batch: list[generate.Request]) -> int:
    return batch_seed([r.seed for r in batch])


_BARE_CT2: dict[int, object] = {}


def bare_ct2_loop(backend: Backend, batches: list[list[generate.Request]], sp: Sampling) -> int:
    """CTranslate2's obvious loop: tokenise, ``generate_batch`` of the whole prompts on one
    loaded generator with ``intra_threads`` = the CPU threads, decode (seeded once: no
    per-batch reseeding, no shared-start static prompt, no workers, no store, no records)."""
    import ctranslate2

    from gvstore.backends.ct2 import CTranslate2Backend, ct2_seed

    assert isinstance(backend, CTranslate2Backend)
    tok = backend.tokenizer
    gen: Any = _BARE_CT2.get(id(backend))
    if gen is None:
        gen = ctranslate2.Generator(str(backend.converted.path), device="cpu",
                                    compute_type=backend.compute_type,
                                    intra_threads=backend.threads)
        _BARE_CT2[id(backend)] = gen
    ctranslate2.set_random_seed(ct2_seed([r.seed for r in batches[0]]))
    tokens = 0
    for batch in batches:
        starts = [tok.convert_ids_to_tokens(backend.prompt_ids(r.prompt.text)) for r in batch]
        out = gen.generate_batch(starts, max_length=sp.max_tokens, sampling_topk=sp.top_k,
                                 sampling_topp=sp.top_p, sampling_temperature=sp.temperature,
                                 include_prompt_in_result=False)
        for res in out:
            ids = res.sequences_ids[0]
            tokens += len(ids)
            tok.decode(ids, skip_special_tokens=True)
    return tokens


def bare(backend: Backend, batches: list[list[generate.Request]], sp: Sampling) -> int:
    if isinstance(backend, TransformersBackend):
        return bare_loop(backend, batches, sp)
    return bare_ct2_loop(backend, batches, sp)


def step(backend: Backend, prompts: list, spec: generate.GenerateSpec) -> int:
    work = Path(tempfile.mkdtemp(prefix="gvstore-genbench-"))
    try:
        summary = generate.run(Store(work), "gen", prompts, spec, lambda: backend)
        return summary.tokens
    finally:
        shutil.rmtree(work)


# ---- under load: each policy in its own process, driven over stdin/stdout ----------------

POLICIES = {
    # name: (what it is, threads option for the back end; None: the policy's default)
    "gvstore": "OMP_WAIT_POLICY=PASSIVE, threads = CPUs of this process (the default now)",
    "torch-default": "torch's defaults: OpenMP spins while waiting, torch's thread count",
    "one-thread": "as gvstore, with GVSTORE_THREADS=1",
    "ctranslate2": "the ctranslate2 back end (int8), gvstore's policy",
}


def child(policy: str, args: argparse.Namespace) -> int:
    """Load the model under ``policy``, then run the generate step once per "go" line."""
    import torch

    if policy == "one-thread":
        os.environ["GVSTORE_THREADS"] = "1"
    threads = torch.get_num_threads() if policy == "torch-default" else None
    task = get_task("arith")
    prompts = [seal(task.prompt_record(it)) for it in task.items()[: args.prompts]]
    sp = Sampling(temperature=0.7, top_p=0.9, max_tokens=args.max_tokens)
    name = "ctranslate2" if policy == "ctranslate2" else "transformers"
    backend = get_backend(name, SMOLLM2, batch_size=args.batch_size,
                          models_dir=args.models_dir, threads=threads)
    spec = generate.GenerateSpec(model=SMOLLM2.name, model_digest=backend.digest,  # type: ignore[attr-defined]
                                 backend=name, sampling=sp, n=1, batch_size=args.batch_size)
    step(backend, prompts[: args.batch_size], spec)  # warm-up
    print(json.dumps({"threads": getattr(backend, "threads", None) or torch.get_num_threads(),
                      "wait": WAIT_AT_TORCH_IMPORT or os.environ.get("OMP_WAIT_POLICY",
                                                                     "(unset)")}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        t0 = time.perf_counter()
        tokens = step(backend, prompts, spec)
        dt = time.perf_counter() - t0
        print(json.dumps({"samples_per_s": len(prompts) / dt, "tokens_per_s": tokens / dt}),
              flush=True)
    return 0


def busy(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` competing processes, each a pure-Python busy loop on one core."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def under_load(args: argparse.Namespace) -> int:
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for p in policies:
        if p not in POLICIES:
            raise SystemExit(f"error: unknown policy {p!r}; choose from {', '.join(POLICIES)}")
    prepare(SMOLLM2, args.models_dir)
    me = [sys.executable, __file__, "--prompts", str(args.prompts), "--max-tokens",
          str(args.max_tokens), "--batch-size", str(args.batch_size), "--models-dir",
          str(args.models_dir)]
    procs: dict[str, subprocess.Popen[str]] = {}
    info: dict[str, dict[str, object]] = {}
    for p in policies:  # one at a time: model loads do not compete with each other
        proc = procs[p] = subprocess.Popen([*me, "--child", p], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        info[p] = json.loads(proc.stdout.readline())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{len(os.sched_getaffinity(0))} usable; {args.prompts} arith prompts, "
          f"max {args.max_tokens} new tokens, n = 1, batch {args.batch_size}; "
          f"{args.load} competing busy process(es); {args.reps} interleaved repetitions")

    def measure(p: str) -> float:
        proc = procs[p]
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        return float(json.loads(proc.stdout.readline())["samples_per_s"])

    rates: dict[tuple[str, int], list[float]] = {(p, k): [] for p in policies
                                                  for k in (0, args.load)}
    try:
        for rep in range(args.reps):
            loads = (0, args.load) if rep % 2 == 0 else (args.load, 0)
            for k in loads:
                hogs = busy(k)
                try:
                    time.sleep(0.5 if k else 0.0)  # let the competitors get going
                    for p in (policies if rep % 2 == 0 else policies[::-1]):
                        rates[(p, k)].append(measure(p))
                finally:
                    for h in hogs:
                        h.kill()
                        h.wait()
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait()

    print(f"\n  {'policy':<14} {'threads':>7}  {'wait':<9} {'unloaded':>9} {'loaded':>9}"
          f" {'loaded/unloaded':>16}   samples/s (medians; runs)")
    for p in policies:
        free, busy_ = statistics.median(rates[(p, 0)]), statistics.median(rates[(p, args.load)])
        runs = (", ".join(f"{r:.2f}" for r in rates[(p, 0)]) + " | "
                + ", ".join(f"{r:.2f}" for r in rates[(p, args.load)]))
        print(f"  {p:<14} {info[p]['threads']!s:>7}  {info[p]['wait']!s:<9} {free:9.2f} "
              f"{busy_:9.2f} {busy_ / free:16.2f}   ({runs})")
    print("\n  target: loaded/unloaded >= 0.40 for gvstore's policy. " + "; ".join(
        f"{p}: {d}" for p, d in POLICIES.items() if p in policies))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--top-k", type=int, default=50, help="0: no cut (the default study: 50)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--engines", default="transformers,ctranslate2,ctranslate2-float32",
                    help="back ends compared side by side (the first is the reference)")
    ap.add_argument("--models-dir", type=Path, default=Path("data/models"))
    ap.add_argument("--load", type=int, default=0,
                    help="competing busy processes: measure unloaded against loaded throughput")
    ap.add_argument("--policies", default="gvstore,torch-default",
                    help=f"with --load: policies to compare ({', '.join(POLICIES)})")
    ap.add_argument("--batch-size", type=int, default=8, help="with --load: the batch size")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child, args)
    if args.load > 0:
        return under_load(args)

    return side_by_side(args)


def _spec(backend: Backend, sp: Sampling, bs: int) -> generate.GenerateSpec:
    return generate.GenerateSpec(model=SMOLLM2.name, model_digest=backend.digest,  # type: ignore[attr-defined]
                                 backend=backend.name, sampling=sp, n=1, batch_size=bs)


def _rate(fn: object, *a: object) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn(*a)  # type: ignore[operator]
    return n / (time.perf_counter() - t0), n


def side_by_side(args: argparse.Namespace) -> int:
    prepare(SMOLLM2, args.models_dir)
    task = get_task("arith")
    items = task.items()
    prompts = [seal(task.prompt_record(it)) for it in items[:: max(1, len(items) // args.prompts)]
               ][: args.prompts]
    sp = Sampling(temperature=0.7, top_p=0.9, top_k=args.top_k, max_tokens=args.max_tokens)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    backends = {e: get_backend(e, SMOLLM2, batch_size=8, models_dir=args.models_dir)
                for e in engines}
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} usable CPUs, "
          f"threads {backends[engines[0]].threads}; {len(prompts)} arith prompts (all "  # type: ignore[attr-defined]
          f"levels), max {args.max_tokens} new tokens, n = 1, t = 0.7, top_p = 0.9, "
          f"top_k = {args.top_k}")
    batches = {e: generate.plan(prompts, _spec(b, sp, 8)) for e, b in backends.items()}
    for b in backends.values():
        step(b, prompts[:8], _spec(b, sp, 8))  # warm-up
    rates: dict[tuple[str, str], list[float]] = {(e, k): [] for e in engines
                                                 for k in ("step", "bare")}
    for rep in range(args.reps):
        for e in (engines if rep % 2 == 0 else engines[::-1]):
            b = backends[e]
            r_step, n = _rate(step, b, prompts, _spec(b, sp, 8))
            r_bare, m = _rate(bare, b, batches[e], sp)
            rates[(e, "step")].append(r_step)
            rates[(e, "bare")].append(r_bare)
            if e == "transformers" and n != m:  # ct2's bare loop is seeded differently
                raise SystemExit(f"the two loops generated different token counts ({n}, {m})")
    med = {k: statistics.median(v) for k, v in rates.items()}
    ref = med[(engines[0], "step")]
    print(f"\n  batch 8 (medians of {args.reps})   step tok/s   bare tok/s   step/bare"
          f"   step vs {engines[0]}")
    for e in engines:
        print(f"  {e:<28} {med[(e, 'step')]:10.1f}   {med[(e, 'bare')]:10.1f}"
              f"   {med[(e, 'step')] / med[(e, 'bare')]:9.3f}   {med[(e, 'step')] / ref:8.2f}x")
    print("  targets: ctranslate2 step >= 3x transformers; step/bare >= 0.95")
    print("\n  batch size   " + "".join(f"{e:>22}" for e in engines) + "   (step tokens/s)")
    for bs in (1, 8, 32):
        row = []
        use = prompts[: max(4, min(len(prompts), 4 * bs))] if bs == 1 else prompts
        for e in engines:
            b = backends[e]
            b.batch_size = bs  # type: ignore[attr-defined]
            row.append(_rate(step, b, use, _spec(b, sp, bs))[0])
            b.batch_size = 8  # type: ignore[attr-defined]
        print(f"  {bs:>10}   " + "".join(f"{r:22.1f}" for r in row))
    reqs = [LoglikRequest(p.text + "\n\nProposed answer: 7. Correct or Incorrect?", a)
            for p in prompts for a in ("Correct", "Incorrect")]
    print(f"\n  log-likelihood scoring ({len(reqs)} requests, batch 8)   requests/s   "
          f"vs {engines[0]}")
    ll_rates = {e: _rate(lambda b: len(b.loglik(reqs)), backends[e])[0] for e in engines}
    for e in engines:
        print(f"  {e:<48} {ll_rates[e]:10.2f}   {ll_rates[e] / ll_rates[engines[0]]:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
