"""DVC stage: grade every generation in the store that has no grade for its task's grader.

The store is ``base.store`` of ``--params`` (the folder dvc.yaml declares the outs in), or
``--store`` when given by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run, stage_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params.yaml to take the store from (base.store)")
    parser.add_argument("--store", type=Path, default=None,
                        help="store root (default: base.store of --params)")
    parser.add_argument("--task", action="append", default=None,
                        help="task to grade (repeatable; default: every task found)")
    args = parser.parse_args(argv)

    def body() -> int:
        from gvstore.steps.grade import grade_store

        params = None if args.store is not None else load_params(args.params)
        summary = grade_store(stage_store(params, args.store), args.task)
        for s in summary.tasks.values():
            note(f"{s.task} (grader {s.grader_version}): {s.generations} generations, "
                 f"{s.already_graded} already graded, {s.graded} graded now, "
                 f"{s.no_prompt} without prompt")
        note(f"wrote {summary.written} grade records")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
