"""DVC stage `verify`: verify one task's generations with one method, for every verifier of
the study, into `data/store/verify/<method>-<task>`. Only verifications missing from the
store run (mc makes one per generation; cot methods and tournaments `verify.repeats`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run, stage_store  # noqa: E402

from gvstore.verifiers.registry import method_names  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", required=True,
                    choices=method_names())
    ap.add_argument("--task", required=True)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.progress import verify_bar
        from gvstore.steps.verify import verify_with_params

        params = load_params(args.params)
        store = stage_store(params)
        method, task = args.method, args.task
        for name in params.study.verifiers:
            verifier = params.model(name)
            with verify_bar(method, verifier.name, task, args.quiet) as bar:
                s = verify_with_params(params, store, verifier, method, task,
                                       folder=f"verify/{method}-{task}", progress=bar)
            d = s.as_dict()
            note(f"verify {method} {name} {task}: {s.made} made, {s.present} already "
                 f"present ({s.generations} generations); parse failure rate "
                 f"{d['parse_failure_rate']}, {d['seconds_per_call']} s per call, "
                 f"{s.seconds:.1f} s")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
