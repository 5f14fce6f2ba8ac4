"""DVC stage `report`: metrics.json, plot series and PNGs of the study, from the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run, show, stage_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.report import build, views

        params = load_params(args.params)
        out = Path(params.base.reports)
        report = build(stage_store(params), params, out)
        show(*views(report.metrics))
        note(f"report: {out / 'metrics.json'} and plots in {out}")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
