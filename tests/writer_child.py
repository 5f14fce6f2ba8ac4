"""A resumable writer run as a child process by test_store.py (and killed with SIGKILL).

Writes N deterministic generation records into a store, asking the store first which keys are
missing, exactly like a real stage does. With a fourth argument (a file path) it stops after its
first flush until that file exists (so a test can act while it holds the folder's lock). A
``GvstoreError`` is printed as one ``error:`` line on stderr with exit status 1, like the CLI.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gvstore.errors import GvstoreError
from gvstore.records import Generation, seal
from gvstore.store import Store


def records(n: int) -> list[Generation]:
    return [
        seal(Generation(prompt_id=f"sha256:{i // 8:064x}", task="t", model="m",
                        sample_index=i % 8, seed=i, text=f"sample {i} " + "x" * (i % 97)))
        for i in range(n)
    ]


def main() -> int:
    try:
        return _run()
    except GvstoreError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


def _run() -> int:
    root, n, flush = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    go = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    store = Store(root)
    recs = records(n)
    todo = set(store.missing([r.key for r in recs], kind="generation"))
    with store.writer("gen", flush_records=flush) as w:
        for r in recs:
            if r.key in todo:
                w.add(r)
                if w.count % flush == 0:
                    print(w.count, flush=True)
                    while go is not None and not go.exists():
                        time.sleep(0.01)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
