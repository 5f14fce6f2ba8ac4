"""DVC stage `prepare-model`: make `<models_dir>/<model>` for one model of the study.

A package (GGUF) model is converted once to safetensors (fast loads, trainable). For a local
or hub model nothing is converted: the folder gets only a manifest naming the model's digest,
so later stages can depend on it uniformly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="a model of params' study.models")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.models import Manifest, prepare, prepared_dir, resolve, write_manifest

        params = load_params(args.params)
        spec = params.model(args.model)
        models_dir = Path(params.base.models_dir)
        if spec.source == "package":
            out, converted = prepare(spec, models_dir)
            note(f"prepare-model: {spec.name} {'converted' if converted else 'up to date'}"
                 f" -> {out}")
            return 0
        out = prepared_dir(spec, models_dir)  # a safe name, strictly inside models_dir
        digest = resolve(spec, models_dir).digest
        if spec.source == "local" and Path(spec.path).resolve() == out.resolve():
            # the model's own folder (its manifest names its digest): no pointer over it
            note(f"prepare-model: {spec.name} (local) lives in {out}; digest {digest}")
            return 0
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, Manifest(name=spec.name, source=spec.source, pointer=True,
                                     model_digest=digest))
        note(f"prepare-model: {spec.name} ({spec.source}) is used as it is; digest {digest}")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
