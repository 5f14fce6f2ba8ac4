"""Generate benchmark: what the store costs, and how batch size pays, on the default model.

Measured side by side in one run on this machine, on the embedded SmolLM2-135M-Instruct
(prepared to safetensors first), the same `arith` prompts, seeds and batch layout:

  * tokens/s of the generate step (``gvstore.steps.generate.run``: plan keys, ask the store what is
    missing, sample, write records) against a bare ``model.generate`` loop over the same
    batches; repetitions are interleaved and the median taken (the machine is shared);
  * tokens/s of the generate step at batch sizes 1, 8 and 32.

    python benchmarks/generate_bench.py [--prompts 32] [--max-tokens 48] [--reps 3]

Under load (``--load N``): samples/s of the generate step with no competing process and with N
busy-loop processes this script starts itself, for gvstore's CPU policy (OpenMP's passive wait
policy, threads = the CPUs this process may use; gvstore/backends/threads.py) and for torch's
old defaults (active spinning), side by side. Each policy runs in its own process (OpenMP reads
its wait policy once, when torch is imported); the unloaded and loaded runs of all policies
are interleaved and the median taken. Target: loaded >= 40% of unloaded.

    python benchmarks/generate_bench.py --load 1 [--prompts 16] [--max-tokens 32] [--reps 3]
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

# The old-default child must import torch before gvstore sets the wait policy.
WAIT_AT_TORCH_IMPORT: str | None = None
if "--child" in sys.argv and "torch-default" in sys.argv:
    WAIT_AT_TORCH_IMPORT = "(unset)"
    for _key in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GVSTORE_THREADS"):
        os.environ.pop(_key, None)
    import torch  # noqa: F401

from gvstore.backends.hf import TransformersBackend  # noqa: E402
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
    from gvstore.backends.hf import batch_seed

    return batch_seed([r.seed for r in batch])


def step(backend: TransformersBackend, prompts: list, spec: generate.GenerateSpec) -> int:
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
    backend = TransformersBackend(SMOLLM2, batch_size=args.batch_size,
                                  models_dir=args.models_dir, threads=threads)
    spec = generate.GenerateSpec(model=SMOLLM2.name, model_digest=backend.digest,
                                 backend="transformers", sampling=sp, n=1,
                                 batch_size=args.batch_size)
    step(backend, prompts[: args.batch_size], spec)  # warm-up
    print(json.dumps({"threads": torch.get_num_threads(),
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
        procs[p] = subprocess.Popen([*me, "--child", p], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
        assert procs[p].stdout is not None
        info[p] = json.loads(procs[p].stdout.readline())
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
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--reps", type=int, default=3)
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

    prepare(SMOLLM2, args.models_dir)
    task = get_task("arith")
    prompts = [seal(task.prompt_record(it)) for it in task.items()[: args.prompts]]
    sp = Sampling(temperature=0.7, top_p=0.9, max_tokens=args.max_tokens)
    import torch

    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}; "
          f"{len(prompts)} arith prompts, max {args.max_tokens} new tokens, n = 1")

    backend = TransformersBackend(SMOLLM2, batch_size=8, models_dir=args.models_dir)
    spec = generate.GenerateSpec(model=SMOLLM2.name, model_digest=backend.digest,
                                 backend="transformers", sampling=sp, n=1, batch_size=8)
    batches = generate.plan(prompts, spec)
    step(backend, prompts[:8], spec)  # warm-up
    rates: dict[str, list[float]] = {"step": [], "bare": []}
    for _ in range(args.reps):
        t0 = time.perf_counter()
        n = step(backend, prompts, spec)
        rates["step"].append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        m = bare_loop(backend, batches, sp)
        rates["bare"].append(m / (time.perf_counter() - t0))
        assert n == m, f"the two loops generated different token counts ({n} vs {m})"
    step_r, bare_r = statistics.median(rates["step"]), statistics.median(rates["bare"])
    print(f"\n  generate step        {step_r:8.1f} tokens/s   (runs: "
          + ", ".join(f"{r:.1f}" for r in rates["step"]) + ")")
    print(f"  bare model.generate  {bare_r:8.1f} tokens/s   (runs: "
          + ", ".join(f"{r:.1f}" for r in rates["bare"]) + ")")
    print(f"  ratio step / bare    {step_r / bare_r:8.3f}      (target >= 0.95; batch 8)")

    print("\n  batch size   tokens/s   samples/s")
    for bs in (1, 8, 32):
        backend.batch_size = bs
        spec_b = generate.GenerateSpec(model=SMOLLM2.name, model_digest=backend.digest,
                                       backend="transformers", sampling=sp, n=1, batch_size=bs)
        t0 = time.perf_counter()
        n = step(backend, prompts, spec_b)
        dt = time.perf_counter() - t0
        print(f"  {bs:>10}   {n / dt:8.1f}   {len(prompts) / dt:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
