"""DVC stage `weights`: materialise the Weight records of filter specs (idempotent).

Every filtered generation gets one record per spec and verifier; records already in the store
(same key: generation, spec, input records) are skipped, so a re-run writes nothing new.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None,
                        help="store root (default: $GVSTORE_STORE or data/store)")
    parser.add_argument("--spec", action="append", default=None,
                        help="filter spec, e.g. mc:quantile=0.8 (repeatable; default: the "
                        "weights.specs of --params)")
    parser.add_argument("--params", type=Path, default=None,
                        help="params.yaml to take the store and specs from")
    parser.add_argument("--task", action="append", default=[], help="only this task")
    parser.add_argument("--generator", action="append", default=[],
                        help="only this generator model")
    parser.add_argument("--verifier", action="append", default=[],
                        help="only this verifier model")
    parser.add_argument("--round", action="append", type=int, default=[],
                        help="only this round")
    parser.add_argument("--folder", default="weights", help="store folder to write into")
    args = parser.parse_args(argv)

    from gvstore.analysis.frames import Filters
    from gvstore.analysis.specs import parse
    from gvstore.analysis.weights import materialise
    from gvstore.errors import GvstoreError
    from gvstore.store import Store

    try:
        store_root = args.store
        spec_texts = args.spec or []
        if args.params is not None:
            from gvstore.params import load

            params = load(args.params)
            store_root = store_root or Path(params.base.store)
            spec_texts = spec_texts or params.weights.specs
        if not spec_texts:
            raise GvstoreError("no filter spec: give --spec or --params with weights.specs")
        specs = [parse(s) for s in spec_texts]
        filters = Filters(tuple(args.task), tuple(args.generator), tuple(args.verifier),
                          tuple(args.round))
        rep = materialise(Store(store_root), specs, filters=filters, folder=args.folder)
    except GvstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"weights: {rep.computed} computed, {rep.written} written, "
          f"{rep.present} already present", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
