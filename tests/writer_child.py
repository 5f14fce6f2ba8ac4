"""A resumable writer run as a child process by test_store.py (and killed with SIGKILL).

Writes N deterministic generation records into a store, asking the store first which keys are
missing, exactly like a real stage does.
"""

from __future__ import annotations

import sys

from gvstore.records import Generation, seal
from gvstore.store import Store


def records(n: int) -> list[Generation]:
    return [
        seal(Generation(prompt_id=f"sha256:{i // 8:064x}", task="t", model="m",
                        sample_index=i % 8, seed=i, text=f"sample {i} " + "x" * (i % 97)))
        for i in range(n)
    ]


def main() -> int:
    root, n, flush = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = Store(root)
    recs = records(n)
    todo = set(store.missing([r.key for r in recs], kind="generation"))
    with store.writer("gen", flush_records=flush) as w:
        for r in recs:
            if r.key in todo:
                w.add(r)
                if w.count % flush == 0:
                    print(w.count, flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
