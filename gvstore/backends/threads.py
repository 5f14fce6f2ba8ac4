"""CPU threads and OpenMP's wait policy for torch, chosen for a CPU shared with other work.

By default torch's OpenMP threads busy-wait (spin) at the end of every parallel region for
the others to arrive. With one other busy process on a 2-core machine, one of two torch
threads is often off its core and the other spins for it: generation ran at 0.06 samples/s
instead of 0.8. gvstore therefore

* sets ``OMP_WAIT_POLICY=PASSIVE`` (a waiting thread sleeps; GNU OpenMP, which torch's CPU
  wheels use) and ``KMP_BLOCKTIME=0`` (the same for Intel's OpenMP), unless they are set
  already. OpenMP reads them once, when torch is first imported: ``gvstore.backends`` sets
  them when it is imported, which the stages and the CLI do before any torch import;
* uses as many threads as this process may run on (``os.sched_getaffinity``), unless
  ``$GVSTORE_THREADS`` or the back end's ``threads`` option says otherwise.

``benchmarks/generate_bench.py --load 1`` measures the policy against torch's defaults.
"""

from __future__ import annotations

import os
import sys

from gvstore.errors import GvstoreError

ENV_THREADS = "GVSTORE_THREADS"
WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def set_wait_policy() -> bool:
    """Put the passive wait policy in the environment where the user has not set one; True if
    it is in effect for this process's torch (torch not imported yet, or imported with it)."""
    for key, value in WAIT_POLICY.items():
        os.environ.setdefault(key, value)
    if "torch" not in sys.modules:
        return True
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cpu_threads(option: int | None = None) -> int:
    """Torch's CPU threads: ``option`` if given, else ``$GVSTORE_THREADS``, else
    ``available_cpus()``."""
    if option is not None:
        if isinstance(option, bool) or not isinstance(option, int) or option < 1:
            raise GvstoreError(f"threads must be a whole number >= 1, got {option!r}")
        return option
    text = os.environ.get(ENV_THREADS, "").strip()
    if text:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            raise GvstoreError(f"${ENV_THREADS} must be a whole number >= 1, got {text!r}")
        return n
    return available_cpus()
