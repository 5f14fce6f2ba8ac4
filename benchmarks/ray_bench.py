"""Ray runner benchmark: the same generate job on the local runner and on a local Ray instance,
side by side in one run, on the embedded SmolLM2-135M-Instruct.

Each configuration runs in a fresh process (a Ray instance is started per process, as a user's
`gvstore generate --runner ray` does) into a fresh store, on the same prompts, seeds and batch
layout; repetitions are interleaved and the median taken (the machine may be shared):

  * local:          the local runner, threads = the CPUs of this machine;
  * local-1thread:  the local runner with one thread (what one 1-CPU actor gets);
  * ray-1:          one actor of 1 CPU;
  * ray-N:          N actors of 1 CPU each (N = --actors, default: the CPUs of this machine).

It prints wall seconds of the whole step (for Ray: start of the instance, of the pool and the
model loads included), samples/s over the model phase, each against ``local``, the Ray cost per
record ((ray wall - local-1thread wall) / records for one actor), and checks that every run
wrote the same record ids.

    python benchmarks/ray_bench.py [--prompts 32] [--n 4] [--max-tokens 32] [--batch-size 8]
        [--backend ctranslate2] [--reps 1] [--actors N]

The runner's own cost per record, without a model (``--overhead``): an instant back end that
answers every request at once, so what is left is planning, the store, and for Ray the rows,
pickling, the object store, streaming and the driver's writes. Local and Ray side by side:

    python benchmarks/ray_bench.py --overhead [--prompts 2000] [--n 8] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.monotonic()
from gvstore.backends import get_backend
from gvstore.backends.base import model_digest
from gvstore.models import SMOLLM2
from gvstore.params import RunnerParams
from gvstore.records import Sampling
from gvstore.steps import generate
from gvstore.store import Store
from gvstore.tasks.registry import get_task
a = json.loads(sys.argv[1])
models = Path(a["models"])
task = get_task("arith")
prompts = [task.prompt_record(it) for it in task.items()[: a["prompts"]]]
spec = generate.GenerateSpec(
    model=SMOLLM2.name, model_digest=model_digest(a["backend"], SMOLLM2, models),
    backend=a["backend"], sampling=Sampling(temperature=0.7, top_p=0.9, top_k=50,
    max_tokens=a["max_tokens"]), n=a["n"], seed=0, batch_size=a["batch_size"])
runner = (RunnerParams(kind="ray", actors=a["actors"], local_cpus=a["cpus"])
          if a["actors"] else None)
factory = lambda: get_backend(a["backend"], SMOLLM2, models_dir=models,
                              batch_size=a["batch_size"])
t1 = time.monotonic()
s = generate.run(Store(a["store"]), "g", prompts, spec, factory, runner=runner)
t2 = time.monotonic()
ids = sorted(r.id for r in Store(a["store"]).iter_records(kinds=("generation",)))
print(json.dumps({"wall": t2 - t1, "model_seconds": s.model_seconds, "made": s.made,
                  "tokens": s.tokens, "ids": ids}))
"""


OVERHEAD = r"""
import json, sys, time
from pathlib import Path
from gvstore.backends.base import Sample
from gvstore.params import RunnerParams
from gvstore.records import Prompt, Sampling
from gvstore.steps import generate
from gvstore.store import Store

class Instant:
    name = "instant"
    def sample(self, requests):
        return [Sample("answer " + str(r.seed), 2, "stop") for r in requests]
    def close(self):
        pass

a = json.loads(sys.argv[1])
prompts = [Prompt(task="t", split="test", item_id=str(i), text=f"question {i}", reference="1")
           for i in range(a["prompts"])]
spec = generate.GenerateSpec(model="m", model_digest="sha256:" + "0" * 64, backend="instant",
                             sampling=Sampling(temperature=1.0, max_tokens=4), n=a["n"],
                             batch_size=a["batch_size"])
runner = (RunnerParams(kind="ray", actors=a["actors"], local_cpus=a["cpus"])
          if a["actors"] else None)
if runner is not None:  # the instance's start is the fixed cost, measured apart
    from gvstore.steps.ray_runner import start
    t0 = time.monotonic(); start(runner); started = time.monotonic() - t0
else:
    started = 0.0
t1 = time.monotonic()
s = generate.run(Store(a["store"]), "g", prompts, spec, Instant, runner=runner)
print(json.dumps({"wall": time.monotonic() - t1, "start": started, "made": s.made}))
"""


def overhead(args: argparse.Namespace) -> None:
    records = args.prompts * args.n
    print(f"runner overhead: {args.prompts} prompts x n={args.n} = {records} records, batch "
          f"{args.batch_size}, an instant back end, {os.cpu_count()} CPUs, {args.reps} rep(s), "
          f"{time.strftime('%Y-%m-%d')}")
    got: dict[str, list[dict[str, float]]] = {"local": [], "ray-1": [], f"ray-{args.actors}": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name in got:
                actors = 0 if name == "local" else int(name.split("-")[1])
                a = {"prompts": args.prompts, "n": args.n, "batch_size": args.batch_size,
                     "actors": actors, "cpus": os.cpu_count(),
                     "store": str(Path(tmp) / f"{name}-{rep}")}
                out = subprocess.run([sys.executable, "-c", OVERHEAD, json.dumps(a)],
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
                got[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["wall"] for r in got["local"])
    print(f"{'config':<10}{'start s':>9}{'run s':>9}{'us/record':>11}{'x local':>9}")
    for name, rs in got.items():
        wall = statistics.median(r["wall"] for r in rs)
        start = statistics.median(r["start"] for r in rs)
        print(f"{name:<10}{start:>9.1f}{wall:>9.1f}{wall / records * 1e6:>11.0f}"
              f"{wall / base:>9.2f}")


def _run(name: str, args: argparse.Namespace, models: Path, work: Path, rep: int,
         actors: int, threads: int | None) -> dict[str, object]:
    env = dict(os.environ)
    if threads is not None:
        env["GVSTORE_THREADS"] = str(threads)
    a = {"models": str(models), "prompts": args.prompts, "n": args.n,
         "max_tokens": args.max_tokens, "batch_size": args.batch_size, "backend": args.backend,
         "actors": actors, "cpus": os.cpu_count(), "store": str(work / f"{name}-{rep}")}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(a)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--backend", default="ctranslate2")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--actors", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--overhead", action="store_true",
                    help="the runner's own cost per record, with an instant back end")
    args = ap.parse_args()
    if args.overhead:
        overhead(args)
        return
    from gvstore.models import SMOLLM2, prepare

    configs = {"local": (0, None), "local-1thread": (0, 1), "ray-1": (1, None),
               f"ray-{args.actors}": (args.actors, None)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = work / "models"
        prepare(SMOLLM2, models)
        results: dict[str, list[dict[str, object]]] = {k: [] for k in configs}
        for rep in range(args.reps):
            for name, (actors, threads) in configs.items():
                results[name].append(_run(name, args, models, work, rep, actors, threads))
    records = args.prompts * args.n
    print(f"generate {args.prompts} prompts x n={args.n} = {records} samples, max_tokens "
          f"{args.max_tokens}, batch {args.batch_size}, {args.backend}, {os.cpu_count()} CPUs, "
          f"{args.reps} rep(s), {time.strftime('%Y-%m-%d')}")
    ids = {json.dumps(r["ids"]) for rs in results.values() for r in rs}
    print(f"same record ids in every run: {len(ids) == 1}")
    med = {k: {f: statistics.median(float(r[f]) for r in rs)  # type: ignore[arg-type]
               for f in ("wall", "model_seconds", "tokens")} for k, rs in results.items()}
    base = med["local"]
    print(f"{'config':<15}{'wall s':>9}{'x local':>9}{'samples/s':>11}{'x local':>9}")
    for k, m in med.items():
        rate = records / m["model_seconds"] if m["model_seconds"] else float("nan")
        base_rate = records / base["model_seconds"]
        print(f"{k:<15}{m['wall']:>9.1f}{m['wall'] / base['wall']:>9.2f}{rate:>11.2f}"
              f"{rate / base_rate:>9.2f}")
    extra = (med["ray-1"]["wall"] - med["local-1thread"]["wall"]) / records
    print(f"Ray cost per record, one actor against the local runner with one thread: "
          f"{extra * 1000:.1f} ms (start of the instance, the pool and the model load "
          f"spread over {records} records)")


if __name__ == "__main__":
    main()
