"""DVC stage `demo`: write a synthetic store from the seeded simulator (no model needed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec
import yaml


class Base(msgspec.Struct, forbid_unknown_fields=True):
    seed: int = 0
    store: str = "data/store"


class Demo(msgspec.Struct, forbid_unknown_fields=True):
    prompts: int = 200
    samples: int = 16
    methods: list[str] = msgspec.field(default_factory=lambda: ["mc", "cot_score"])
    discrimination: float = 1.5
    parse_failure: float = 0.05
    repeats: int = 1
    tournament_rounds: int = 3


class Params(msgspec.Struct):
    base: Base = msgspec.field(default_factory=Base)
    demo: Demo = msgspec.field(default_factory=Demo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)

    from gvstore import synth
    from gvstore.errors import GvstoreError
    from gvstore.store import Store

    try:
        raw = yaml.safe_load(args.params.read_text()) or {}
        p = msgspec.convert(raw, Params)
        cfg = synth.SynthConfig(
            prompts=p.demo.prompts, samples=p.demo.samples, methods=tuple(p.demo.methods),
            seed=p.base.seed, discrimination=p.demo.discrimination,
            parse_failure=p.demo.parse_failure, repeats=p.demo.repeats,
            tournament_rounds=p.demo.tournament_rounds, task="demo",
        )
        cfg.check()
    except (OSError, yaml.YAMLError, msgspec.ValidationError, GvstoreError) as exc:
        print(f"error: {args.params}: {exc}", file=sys.stderr)
        return 1
    store = Store(p.base.store)
    with store.writer("demo", flush_records=100_000) as w:
        n = synth.write(w.add, cfg)
    print(f"demo: wrote {n} synthetic records to {store.root / 'demo'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
