"""What a competent user would write instead of gvstore: the gap and the threshold sweep as a
polars expression pipeline and as DuckDB SQL, over the projection cache's Parquet files
(``<store>/.cache/proj/<key>-{generations,grades,verifications}.parquet``).

The gap of ``mc:quantile=Q`` per prompt: keep the samples whose score is at least the
linearly interpolated Q-quantile of the prompt's non-null scores (``quantile_cont``), acc =
mean utility of the graded samples, acc_w = mean utility of the kept graded samples (acc if
none is kept); gap = mean over prompts of acc_w - acc. gvstore's rule (``weights.py``) keeps
s >= s_(k), k = ceil(Q (m-1)), which is the same set whenever Q (m-1) is not within 1e-9 of
an integer (then both agree exactly); where it is (e.g. Q = 0.5, m = 129), floating point
can put the interpolated quantile a hair above s_(k) and drop the samples tied at it.

Every query reads the Parquet files itself (that is part of its time), as a script would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DUCKDB_GAP = """
WITH s AS (SELECT gen, avg(score) AS score FROM read_parquet('{verifications}')
           WHERE method = 'mc' GROUP BY gen),
d AS (SELECT g.prompt, gr.strict AS u, s.score FROM read_parquet('{generations}') g
      LEFT JOIN read_parquet('{grades}') gr USING (gen) LEFT JOIN s USING (gen)),
t AS (SELECT prompt, quantile_cont(score, {q}) AS thr FROM d GROUP BY prompt),
p AS (SELECT d.prompt, avg(u) AS acc, avg(u) FILTER (WHERE score >= thr) AS acc_w
      FROM d JOIN t USING (prompt) GROUP BY d.prompt)
SELECT avg(coalesce(acc_w, acc) - acc) AS gap FROM p
"""

DUCKDB_SWEEP = """
WITH s AS (SELECT gen, avg(score) AS score FROM read_parquet('{verifications}')
           WHERE method = 'mc' GROUP BY gen),
d AS (SELECT g.prompt, gr.strict AS u, s.score FROM read_parquet('{generations}') g
      LEFT JOIN read_parquet('{grades}') gr USING (gen) LEFT JOIN s USING (gen)),
v AS (SELECT unnest([{values}]) AS tau),
p AS (SELECT tau, prompt, avg(u) AS acc, avg(u) FILTER (WHERE score >= tau) AS acc_w
      FROM d CROSS JOIN v GROUP BY tau, prompt)
SELECT tau, avg(coalesce(acc_w, acc) - acc) AS gap FROM p GROUP BY tau ORDER BY tau
"""


def parquet_files(cache_dir: Path, key: str) -> dict[str, str]:
    return {name: str(cache_dir / f"{key}-{name}.parquet")
            for name in ("generations", "grades", "verifications")}


def duckdb_gap(files: dict[str, str], q: float) -> float:
    import duckdb

    row = duckdb.sql(DUCKDB_GAP.format(q=q, **files)).fetchall()[0]
    assert row is not None
    return float(row[0])


def duckdb_sweep(files: dict[str, str], values: list[float]) -> list[float]:
    import duckdb

    vals = ", ".join(repr(float(v)) for v in values)
    rows = duckdb.sql(DUCKDB_SWEEP.format(values=vals, **files)).fetchall()
    return [float(r[1]) for r in rows]


def duckdb_script(files: dict[str, str], q: float) -> str:
    """A ``python -c`` script that prints the DuckDB gap (the whole-process rival)."""
    sql = DUCKDB_GAP.format(q=q, **files)
    return f"import duckdb; print(duckdb.sql({sql!r}).fetchall()[0][0])"


def _polars_frame(files: dict[str, str]) -> Any:
    import polars as pl

    gens = pl.scan_parquet(files["generations"]).select("gen", "prompt")
    grades = pl.scan_parquet(files["grades"]).select("gen", u="strict")
    scores = (pl.scan_parquet(files["verifications"]).filter(pl.col("method") == "mc")
              .group_by("gen").agg(pl.col("score").mean()))
    return gens.join(grades, on="gen", how="left").join(scores, on="gen", how="left")


def _polars_per_prompt(df: Any, keep: Any) -> Any:
    import polars as pl

    per = df.with_columns(keep=keep.fill_null(False)).group_by("prompt").agg(
        acc=pl.col("u").mean(), acc_w=pl.col("u").filter(pl.col("keep")).mean())
    return per.select((pl.col("acc_w").fill_null(pl.col("acc")) - pl.col("acc")).mean())


def polars_gap(files: dict[str, str], q: float) -> float:
    import polars as pl

    df = _polars_frame(files)
    thr = pl.col("score").quantile(q, interpolation="linear").over("prompt")
    return float(_polars_per_prompt(df, pl.col("score") >= thr).collect().item())


def polars_sweep(files: dict[str, str], values: list[float]) -> list[float]:
    import polars as pl

    df = _polars_frame(files).collect().lazy()  # read and joined once, then one query a value
    outs = pl.collect_all([_polars_per_prompt(df, pl.col("score") >= v) for v in values])
    return [float(o.item()) for o in outs]
