"""DVC stage `generate`: sample `sample.n` answers per prompt of one task, for every generator
of the study, into `data/store/generate-<task>`. Only samples missing from the store run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run, stage_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", required=True)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.progress import generate_bar
        from gvstore.steps.generate import generate_task

        params = load_params(args.params)
        store = stage_store(params)
        for name in params.study.generators:
            model = params.model(name)
            with generate_bar(model.name, args.task) as bar:
                s = generate_task(
                    store, model, args.task, params.task(args.task),
                    params.sample, seed=params.base.seed, round_=None,
                    models_dir=Path(params.base.models_dir), folder=f"generate/{args.task}",
                    progress=bar, runner=params.runner)
            d = s.as_dict()
            note(f"generate {name} {args.task}: {s.made} generated, {s.present} already "
                 f"present ({s.prompts} prompts x n={params.sample.n}); "
                 f"{d['samples_per_s'] or 0} samples/s, {d['tokens_per_s'] or 0} tok/s, "
                 f"{s.seconds:.1f} s")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
