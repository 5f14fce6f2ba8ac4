"""DVC stage `prepare-model`: make `<models_dir>/<model>` for one model of the study.

A package (GGUF) model is converted once to safetensors (fast loads, trainable). For a local
or hub model nothing is converted: the folder gets only a manifest naming the model's digest,
so later stages can depend on it uniformly.

Where params' ``sample.backend`` or ``verify.backend`` is a ctranslate2 back end, the model is
also converted for it (``<models_dir>/<model>.ct2-<compute type>``, see
gvstore/backends/ct2_convert.py). That is only a head start: the back end converts on first use
anyway, and the converted folders are in ``.dvcignore``, so they never move a stage's hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gvstore.models import ModelSpec
    from gvstore.params import Params

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
            convert_for(params, spec, models_dir)
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
        convert_for(params, spec, models_dir)
        return 0

    return run(body)


def convert_for(params: Params, spec: ModelSpec, models_dir: Path) -> None:
    """Convert the model for the ctranslate2 back ends that params' sample/verify name."""
    from gvstore.backends.base import model_digest

    names = {params.sample.backend, params.verify.backend}
    for name in sorted(n for n in names if n.startswith("ctranslate2")):
        digest = model_digest(name, spec, models_dir)
        note(f"prepare-model: {spec.name} converted for {name}; digest {digest}")


if __name__ == "__main__":
    sys.exit(main())
