"""The Ray runner: a step's model calls on a Ray cluster (or a local Ray instance), its records
written here, by the ordinary store writer.

The step plans its batches and asks the store for the missing keys exactly as with the local
runner (``steps.base``). The batches that hold a missing key become a Ray Data dataset with
one row per request (its record key, batch, position and the pickled request: for generate a
(prompt, sample index) pair with its seed) and one block per batch, so that
``map_batches(batch_size=None)`` hands every batch whole, in the same layout as the local
runner, to an actor pool of ``_Worker``s. Each actor makes the back end once (the step's own
factory, shipped to it) and answers a batch with one output row per request, or with error rows
that say why the batch failed. Results stream back to the driver as batches finish; the driver
builds the records (key, output, provenance with the worker's host) and writes each batch whole
(``Writer.add_batch``: one segment), so a killed driver keeps every batch it wrote and a rerun
asks again only for the missing keys. Failed batches are run again, up to ``retries`` more
times; any still failing are reported (``GvstoreError``: the other batches are stored), never
dropped. A killed worker is Ray's business: the actor is restarted and its batch retried.

Ray is an optional dependency (``pip install 'gvstore[ray]'``), imported only here and only when
the runner is used.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gvstore.backends.base import Backend
from gvstore.errors import GvstoreError
from gvstore.steps.base import write_batch
from gvstore.writer import Writer

if TYPE_CHECKING:
    from gvstore.params import RunnerParams
    from gvstore.steps.base import Batches, StepSummary

ERROR_CHARS = 500
"""An error row keeps at most this much of the exception's text."""
CRASH_RESTARTS = 3
"""How often an actor that died (killed, crashed) is restarted and its batch retried."""


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise GvstoreError("the ray runner needs Ray: pip install 'gvstore[ray]' "
                           f"(or 'ray[data]'); {exc}") from None
    return ray


def reachable(address: str, timeout: float = 5.0) -> None:
    """A clear error now, not a wait without end, when a ``host:port`` (or ``ray://...``)
    cluster address does not answer (Ray itself retries for minutes)."""
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    if address == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise GvstoreError(f"cannot reach the Ray cluster at {address!r} within {timeout:g} s: "
                           f"{exc}; check runner.address / --ray-address / $RAY_ADDRESS"
                           ) from None


def start(config: RunnerParams) -> Any:
    """Attach to the cluster at ``config.address`` (else ``$RAY_ADDRESS``), or start a local
    Ray instance on this machine; quiet (no progress bars, errors only). Returns ``ray``."""
    ray = _ray()
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        address = config.address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.ERROR, "configure_logging": False}
        if address is None and config.local_cpus is not None:
            kwargs["num_cpus"] = config.local_cpus
        if address is not None:
            reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a local instance"
            raise GvstoreError(f"cannot start Ray ({where}): {exc}") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ray


def pool_size(config: RunnerParams, resources: dict[str, float], batches: int) -> int:
    """Actors in the pool: ``config.actors``, else as many as the cluster's CPUs (or GPUs,
    for actors that take a GPU) hold; never more than there are batches, at least one."""
    if config.actors is not None:
        n = config.actors
    elif config.num_gpus > 0:
        n = int(resources.get("GPU", 0) // config.num_gpus)
    else:
        n = int(resources.get("CPU", 1) // max(config.num_cpus, 1e-9))
    return max(1, min(n, batches))


class _Worker:
    """One actor of the pool: makes the back end once, then answers whole batches."""

    def __init__(self, factory: Callable[[], Backend], call: Callable[..., Sequence[Any]],
                 threads: int) -> None:
        # As many torch / CTranslate2 threads as CPUs the actor was given, not the node's.
        os.environ.setdefault("GVSTORE_THREADS", str(threads))
        self.factory, self.call = factory, call
        self.backend: Backend | None = None
        self.host = socket.gethostname()

    def __call__(self, block: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        n = len(block["key"])
        reqs = [pickle.loads(b) for b in block["request"]]
        t0 = time.monotonic()
        outputs: list[bytes | None] = [None] * n
        error = ""
        try:
            if self.backend is None:
                self.backend = self.factory()
            got = list(self.call(self.backend, reqs))
            if len(got) != n:
                raise GvstoreError(f"the back end answered {len(got)} of {n} requests")
            outputs = [pickle.dumps(o) for o in got]
        except Exception as exc:  # an error row: the driver retries or reports it
            error = (f"{type(exc).__name__}: {exc}".splitlines() or ["error"])[0]
            error = error[:ERROR_CHARS]
        dt = time.monotonic() - t0
        return {"key": block["key"], "batch": block["batch"], "pos": block["pos"],
                "output": np.array(outputs, dtype=object),
                "error": np.array([error] * n, dtype=object),
                "seconds": np.full(n, dt), "host": np.array([self.host] * n, dtype=object),
                "call": np.array([uuid.uuid4().hex] * n, dtype=object)}


def _worker_class(factory: Callable[[], Backend], call: Callable[..., Sequence[Any]],
                  threads: int) -> type:
    """A ``_Worker`` class holding the factory itself: Ray ships the class (no constructor
    arguments in the object store, which an actor restarted after a crash could lose)."""

    class Worker(_Worker):
        def __init__(self) -> None:
            super().__init__(factory, call, threads)

    return Worker


def _frame(index: int, batch: Sequence[Any]) -> Any:
    """The rows of one batch: a pandas frame (one Ray block)."""
    import pandas as pd

    rows: dict[str, list[Any]] = {
        "key": [r.key for r in batch], "batch": [index] * len(batch),
        "pos": list(range(len(batch))), "request": [pickle.dumps(r) for r in batch]}
    for col in ("sample_index", "seed"):  # for a reader of the rows (Ray's own tools)
        if all(hasattr(r, col) for r in batch):
            rows[col] = [getattr(r, col) for r in batch]
    return pd.DataFrame(rows)


@dataclass
class Result:
    """One batch's answer: its outputs in batch order, or the error that stopped it."""

    index: int
    outputs: list[Any]
    error: str
    seconds: float
    host: str


def _stream(ray: Any, config: RunnerParams, todo: dict[int, Sequence[Any]],
            factory: Callable[[], Backend], call: Callable[..., Sequence[Any]]
            ) -> Iterator[Result]:
    """Run the batches ``todo`` (index -> requests) on an actor pool; yield each batch's
    result as it finishes (in any order)."""
    ds = ray.data.from_pandas([_frame(i, b) for i, b in todo.items()])
    size = pool_size(config, ray.cluster_resources(), len(todo))
    threads = max(1, int(config.num_cpus))
    with warnings.catch_warnings():
        # Ray 2.60 says extra remote arguments are deprecated (gone in 2.64: the `ray` extra
        # stops below it), yet they are the only way to bound an actor's restarts.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        ds = ds.map_batches(
            _worker_class(factory, call, threads), batch_size=None, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=config.num_cpus, num_gpus=config.num_gpus or None,
            # A killed actor restarts and its batch runs again, a few times: a batch that
            # kills every actor it reaches (a crash, the OOM killer) fails the run instead
            # of looping.
            max_restarts=CRASH_RESTARTS, max_task_retries=CRASH_RESTARTS)
    parts: dict[int, dict[int, tuple[bytes | None, str, float, str]]] = {}
    for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for k in range(len(out["key"])):
            i, pos = int(out["batch"][k]), int(out["pos"][k])
            parts.setdefault(i, {})[pos] = (out["output"][k], str(out["error"][k]),
                                            float(out["seconds"][k]), str(out["host"][k]))
            if len(parts[i]) == len(todo[i]):
                yield _result(i, parts.pop(i), todo[i])


def _result(index: int, rows: dict[int, tuple[bytes | None, str, float, str]],
            batch: Sequence[Any]) -> Result:
    ordered = [rows[p] for p in range(len(batch))]  # every position has come back
    errors = [e for (_, e, _, _) in ordered if e]
    if errors:
        return Result(index, [], errors[0], 0.0, "")
    # No error: every output is there (a worker sends None only beside an error).
    return Result(index, [pickle.loads(o or b"") for (o, _, _, _) in ordered],
                  "", max(s for (_, _, s, _) in ordered), ordered[0][3])


def write_batches(config: RunnerParams, w: Writer, batches: Sequence[Sequence[Any]],
                  missing: set[str], summary: StepSummary, factory: Callable[[], Backend],
                  how: Batches[Any, Any], on_start: Callable[[bool], None] | None = None
                  ) -> None:
    """``steps.base.write_batches`` on Ray: every batch that holds a missing key runs on the
    actor pool and is written whole as it comes back; failed batches run again up to
    ``config.retries`` times, then are reported. ``on_start(True/False)`` brackets the start
    of Ray and of the pool (the step's "loading" notice)."""
    todo = {i: b for i, b in enumerate(batches) if any(r.key in missing for r in b)}
    if not todo:
        return
    if on_start is not None:
        on_start(True)
    ray = start(config)
    began: float | None = None  # when the first batch began on a worker
    failed: dict[int, str] = {}
    try:
        for _attempt in range(config.retries + 1):
            failed = {}
            for res in _stream(ray, config, todo, factory, how.call):
                if began is None:
                    began = time.monotonic() - res.seconds
                    if on_start is not None:
                        on_start(False)
                if res.error:
                    failed[res.index] = res.error
                    continue
                write_batch(w, todo[res.index], res.outputs, missing, summary, how,
                            host=res.host, seconds=res.seconds)
            todo = {i: todo[i] for i in failed}
            if not todo:
                return
    except ray.exceptions.RayError as exc:  # the cluster itself failed (not one batch)
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:ERROR_CHARS]
        raise GvstoreError(f"Ray failed: {type(exc).__name__}: {line}; every batch written "
                           "so far is stored and a rerun asks only for the rest") from exc
    finally:  # the model time of a pool is its wall time once working, not a sum over actors
        if began is not None:
            summary.model_seconds += time.monotonic() - began
    n = sum(len(b) for b in todo.values())
    first_error = failed[min(failed)]
    raise GvstoreError(
        f"{len(todo)} batch(es) ({n} requests) failed on Ray after {config.retries + 1} "
        f"tries; every other batch is stored and a rerun asks only for these. First error: "
        f"{first_error}")
