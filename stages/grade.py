"""DVC stage: grade every generation in the store that has no grade for its task's grader."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None,
                        help="store root (default: $GVSTORE_STORE or data/store)")
    parser.add_argument("--task", action="append", default=None,
                        help="task to grade (repeatable; default: every task found)")
    args = parser.parse_args(argv)

    from gvstore.errors import GvstoreError
    from gvstore.grading import grade_store
    from gvstore.store import Store

    try:
        summary = grade_store(Store(args.store), args.task)
    except GvstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for s in summary.tasks.values():
        print(f"{s.task} (grader {s.grader_version}): {s.generations} generations, "
              f"{s.already_graded} already graded, {s.graded} graded now, "
              f"{s.no_prompt} without prompt", file=sys.stderr)
    print(f"wrote {summary.written} grade records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
