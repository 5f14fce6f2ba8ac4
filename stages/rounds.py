"""DVC stages of the rounds (iterative self-improvement): one step of one round's model.

  generate  round MODEL's samples of the rounds' prompts  -> data/store/rounds/MODEL/generate
  grade     their ground-truth grades                     -> data/store/rounds/MODEL/grade
  verify    the rounds' verifier on them                  -> data/store/rounds/MODEL/verify
  filter    MODEL's training set, from its parent's round -> <rounds.dir>/train/MODEL.jsonl
  finetune  train MODEL from its parent on that set       -> <rounds.dir>/models/MODEL

Every step is idempotent (only missing records are made; an up-to-date model is not trained).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import load_params, note, run  # noqa: E402

STEPS = ("generate", "grade", "verify", "filter", "finetune")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=STEPS)
    ap.add_argument("--model", required=True, help="a model of rounds.start / rounds.steps")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    def body() -> int:
        from gvstore.progress import generate_bar, verify_bar
        from gvstore.steps import rounds
        from gvstore.steps.finetune.step import summary_line

        params = load_params(args.params)
        r = params.rounds
        rnd = r.round_of(args.model)
        where = f"round {rnd} ({args.model})"
        if args.step == "generate":
            with generate_bar(args.model, r.task, args.quiet) as bar:
                s = rounds.generate(params, args.model, progress=bar)
            note(f"{where}: {s.made} generated, {s.present} already present "
                 f"({s.prompts} prompts x n={params.sample.n}), {s.seconds:.1f} s")
        elif args.step == "grade":
            g = rounds.grade(params, args.model)
            st = g.tasks.get(r.task)
            note(f"{where}: {g.written} grades written"
                 + (f", strict accuracy {st.strict_mean:.3f}, flexible "
                    f"{st.flexible_mean:.3f} over the newly graded" if st and st.graded else ""))
        elif args.step == "verify":
            done = rounds.verify(params, args.model, progress=lambda method, verifier:
                                 verify_bar(method, verifier, r.task, args.quiet))
            if not done:
                note(f"{where}: nothing to verify (the ground truth filters)")
            for v in done:
                d = v.as_dict()
                note(f"{where}: verify {v.method} by {v.verifier}: {v.made} made, "
                     f"{v.present} already present; parse failure rate "
                     f"{d['parse_failure_rate']}, {v.seconds:.1f} s")
        elif args.step == "filter":
            e = rounds.training_set(params, args.model)
            note(f"training set of {args.model} ({e.spec}, verifier {e.verifier}): {e.lines} "
                 f"lines from {e.prompts} prompts ({e.skipped_prompts} gave nothing) -> "
                 f"{e.path}")
        else:
            note(summary_line(rounds.finetune(params, args.model)))
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
