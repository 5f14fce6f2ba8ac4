"""DVC stage `weights`: materialise the Weight records of filter specs (idempotent).

Every filtered generation gets one record per spec and verifier; records already in the store
(same key: generation, spec, input records) are skipped, so a re-run writes nothing new.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run, stage_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None,
                        help="store root (default: base.store of --params)")
    parser.add_argument("--spec", action="append", default=None,
                        help="filter spec, e.g. mc:quantile=0.8 (repeatable; default: the "
                        "weights.specs of --params)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params.yaml to take the store (base.store) and specs from; read "
                        "only for what --store and --spec do not give")
    parser.add_argument("--task", action="append", default=[], help="only this task")
    parser.add_argument("--generator", action="append", default=[],
                        help="only this generator model")
    parser.add_argument("--verifier", action="append", default=[],
                        help="only this verifier model")
    parser.add_argument("--round", action="append", type=int, default=[],
                        help="only this round")
    parser.add_argument("--folder", default="weights", help="store folder to write into")
    args = parser.parse_args(argv)

    def body() -> int:
        from gvstore.analysis.frames import Filters
        from gvstore.analysis.specs import parse
        from gvstore.errors import GvstoreError
        from gvstore.steps.weights import materialise

        spec_texts = args.spec or []
        params = None
        if args.store is None or not spec_texts:
            params = load_params(args.params)
            spec_texts = spec_texts or params.weights.specs
        if not spec_texts:
            raise GvstoreError("no filter spec: give --spec or --params with weights.specs")
        specs = [parse(s) for s in spec_texts]
        filters = Filters(tasks=tuple(args.task), generators=tuple(args.generator),
                          verifiers=tuple(args.verifier), rounds=tuple(args.round))
        rep = materialise(stage_store(params, args.store), specs, filters=filters,
                          folder=args.folder)
        note(f"weights: {rep.computed} computed, {rep.written} written, "
             f"{rep.present} already present")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
