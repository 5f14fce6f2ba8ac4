"""DVC stage `generate`: sample `sample.n` answers per prompt of one task, for every generator
of the study, into `data/store/generate-<task>`. Only samples missing from the store run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", required=True)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.cli.model import run_generate

        params = load_params(args.params)
        for name in params.study.generators:
            run_generate(params, name, args.task)
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
