"""DVC stage `report`: report.json, the headline metrics/, plot series and PNGs of the study,
from the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run, stage_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.report import build

        params = load_params(args.params)
        out = Path(params.base.reports)
        build(stage_store(params), params, out)
        # the tables are shown once, by `gvstore report` (make study runs it after dvc repro)
        note(f"report: {out / 'report.json'}, headline metrics in {out / 'metrics'} and plots "
             f"in {out}; `gvstore report` shows it")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
