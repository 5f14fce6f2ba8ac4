"""How far the int8 engine's ``mc`` scores are from the float32 reference, on a study's store.

The default study verifies with the int8 ``ctranslate2`` back end. This script verifies the
same generations again with ``mc`` on a reference back end (``ctranslate2-float32``, which
agrees with the ``transformers`` back end to 1e-4 in log-likelihood, tested; or
``transformers`` itself), in a temporary copy of the store (the study's store is not
touched), and prints, per task, over the generations both verified:

  * Spearman's rank correlation of the two scores (average ranks for ties, computed here with
    polars; no scipy needed) and Pearson's correlation;
  * the largest and the mean absolute difference of the scores P(Correct) / (P(Correct) +
    P(Incorrect)), and of the summed log-likelihoods of each answer;
  * how often the two agree on the side of 0.5.

    python benchmarks/mc_agreement.py [--store data/store] [--params params.yaml]
        [--reference ctranslate2-float32] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from gvstore.params import load as load_params
from gvstore.records import Generation, Sampling, Verification
from gvstore.steps.verify import verify_task
from gvstore.store import Store


def mc_frame(store: Store) -> pl.DataFrame:
    """One row per ``mc`` verification in the store (one pass over it): the generation's task,
    the verifier, the back end, the generation, the score and both answers'
    log-likelihoods."""
    task_of = {g.id: g.task for g in store.iter_records(["generation"])
               if isinstance(g, Generation)}
    rows = []
    for rec in store.iter_records(["verification"]):
        if not isinstance(rec, Verification) or rec.method != "mc":
            continue
        raw = json.loads(rec.raw)
        rows.append({"task": task_of.get(rec.generation_id, ""), "verifier": rec.verifier,
                     "backend": rec.backend, "generation_id": rec.generation_id,
                     "score": rec.score, "ll_correct": raw["correct"]["loglik"],
                     "ll_incorrect": raw["incorrect"]["loglik"]})
    return pl.DataFrame(rows, schema={
        "task": pl.Utf8, "verifier": pl.Utf8, "backend": pl.Utf8, "generation_id": pl.Utf8,
        "score": pl.Float64, "ll_correct": pl.Float64, "ll_incorrect": pl.Float64})


def scores(frame: pl.DataFrame, verifier: str, task: str, backend: str) -> pl.DataFrame:
    """The rows of one verifier, task and back end: generation, score, both logliks."""
    return frame.filter((pl.col("verifier") == verifier) & (pl.col("task") == task)
                        & (pl.col("backend") == backend)).drop("task", "verifier", "backend")


def spearman(a: pl.Series, b: pl.Series) -> float:
    """Pearson's correlation of the average ranks."""
    return pearson(a.rank("average"), b.rank("average"))


def pearson(a: pl.Series, b: pl.Series) -> float:
    x, y = a.cast(pl.Float64), b.cast(pl.Float64)
    dx, dy = x - x.mean(), y - y.mean()
    den = (float((dx * dx).sum()) * float((dy * dy).sum())) ** 0.5
    return float((dx * dy).sum() / den) if den else float("nan")


def compare(tested: pl.DataFrame, ref: pl.DataFrame) -> dict[str, Any]:
    j = tested.join(ref, on="generation_id", suffix="_ref")
    diff = (j["score"] - j["score_ref"]).abs()
    ll = pl.concat([(j["ll_correct"] - j["ll_correct_ref"]).abs(),
                    (j["ll_incorrect"] - j["ll_incorrect_ref"]).abs()])
    return {
        "generations": j.height,
        "spearman": spearman(j["score"], j["score_ref"]),
        "pearson": pearson(j["score"], j["score_ref"]),
        "score_max_abs_diff": float(diff.max()),  # type: ignore[arg-type]
        "score_mean_abs_diff": float(diff.mean()),  # type: ignore[arg-type]
        "loglik_max_abs_diff": float(ll.max()),  # type: ignore[arg-type]
        "same_side_of_half": float(((j["score"] > 0.5) == (j["score_ref"] > 0.5)).mean()),  # type: ignore[arg-type]
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, default=Path("data/store"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--reference", default="ctranslate2-float32")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    params = load_params(args.params)
    tested_backend = params.verify.backend
    out: dict[str, Any] = {"tested": tested_backend, "reference": args.reference, "tasks": {}}
    with tempfile.TemporaryDirectory(prefix="gvstore-mc-") as tmp:
        copy = Path(tmp) / "store"
        shutil.copytree(args.store, copy)
        store = Store(copy)
        seconds: dict[tuple[str, str], float] = {}
        for verifier_name in params.study.verifiers:
            verifier = params.model(verifier_name)
            for task in params.study.tasks:
                t0 = time.perf_counter()
                verify_task(store, verifier, "mc", task, sampling=Sampling(),
                            repeats=1, rounds=params.verify.tournament_rounds,
                            seed=params.base.seed, backend=args.reference,
                            batch_size=params.verify.batch_size,
                            models_dir=Path(params.base.models_dir),
                            folder=f"mc-agreement-{verifier_name}-{task}")
                seconds[(verifier_name, task)] = time.perf_counter() - t0
        frame = mc_frame(store)
    for (verifier_name, task), took in seconds.items():
        row = compare(scores(frame, verifier_name, task, tested_backend),
                      scores(frame, verifier_name, task, args.reference))
        row["reference_seconds"] = round(took, 1)
        out["tasks"][f"{verifier_name}/{task}"] = row
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"mc scores: {tested_backend} against {args.reference} (same generations)")
    for key, row in out["tasks"].items():
        print(f"  {key}: n={row['generations']} spearman {row['spearman']:.4f} "
              f"pearson {row['pearson']:.4f}; |score diff| max {row['score_max_abs_diff']:.4f} "
              f"mean {row['score_mean_abs_diff']:.4f}; |loglik diff| max "
              f"{row['loglik_max_abs_diff']:.3f}; same side of 0.5 "
              f"{row['same_side_of_half']:.3f} ({row['reference_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
