"""Generate benchmark: what the store costs, and how batch size pays, on the default model.

Measured side by side in one run on this machine, on the embedded SmolLM2-135M-Instruct
(prepared to safetensors first), the same `arith` prompts, seeds and batch layout:

  * tokens/s of the generate step (``gvstore.generate.run``: plan keys, ask the store what is
    missing, sample, write records) against a bare ``model.generate`` loop over the same
    batches; repetitions are interleaved and the median taken (the machine is shared);
  * tokens/s of the generate step at batch sizes 1, 8 and 32.

    python benchmarks/generate_bench.py [--prompts 32] [--max-tokens 48] [--reps 3]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from gvstore import generate
from gvstore.backends.hf import TransformersBackend
from gvstore.models import SMOLLM2, prepare
from gvstore.records import Sampling, seal
from gvstore.store import Store
from gvstore.tasks.registry import get_task


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models-dir", type=Path, default=Path("data/models"))
    args = ap.parse_args()

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
