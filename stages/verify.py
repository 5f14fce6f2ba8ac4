"""DVC stage `verify`: verify one task's generations with one method, for every verifier of
the study, into `data/store/verify/<method>-<task>`. Only verifications missing from the
store run (mc makes one per generation; cot methods and tournaments `verify.repeats`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", required=True,
                    choices=("mc", "cot_binary", "cot_score", "tournament"))
    ap.add_argument("--task", required=True)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.cli.verify import run_verify

        params = load_params(args.params)
        for name in params.study.verifiers:
            run_verify(params, name, args.method, args.task, quiet=args.quiet)
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
