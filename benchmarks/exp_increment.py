"""What raising `sample.n` to 2n costs after a study at n, against the study itself.

Builds a small copy of the project (as tests/test_pipeline.py does, with tests/helpers.py: the
real model, arith, mc + cot_binary + tournament), times `dvc repro` at n, then sets
`sample.n: 2n` in its params.yaml and runs `dvc repro` again (which should only generate and
verify the new samples; `dvc exp` needs DVC's git integration, which the project turns off:
see the README's tidy-study paragraph), then a fresh study at 2n, and prints
the three and their ratios. Every stage also pays fixed costs (start-up, model load, DVC), so
on a tiny study the ratios sit above the ideal.

    python benchmarks/exp_increment.py [--prompts 3] [--n 4]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--n", type=int, default=4)
    args = ap.parse_args()

    import helpers as tp
    import yaml

    from gvstore.models import SMOLLM2, prepare

    work = Path(tempfile.mkdtemp(prefix="gvstore-exp-"))
    try:
        models = work / "models"
        prepare(SMOLLM2, models)
        tp.SMALL["tasks"]["arith"]["prompts"] = args.prompts
        tp.SMALL["sample"]["n"] = args.n
        root = tp.make_project(work / "p", models)
        t0 = time.perf_counter()
        out = tp.repro(root)
        base = time.perf_counter() - t0
        if out.returncode != 0:
            print(out.stdout + out.stderr)
            return 1
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["sample"]["n"] = 2 * args.n
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        t0 = time.perf_counter()
        exp = tp.repro(root)
        inc = time.perf_counter() - t0
        if exp.returncode != 0:
            print(exp.stdout + exp.stderr)
            return 1
        tp.SMALL["sample"]["n"] = 2 * args.n
        fresh = tp.make_project(work / "fresh", models)
        t0 = time.perf_counter()
        out = tp.repro(fresh)
        full = time.perf_counter() - t0
        if out.returncode != 0:
            print(out.stdout + out.stderr)
            return 1
        print(f"study at n={args.n} ({args.prompts} arith prompts), from scratch: {base:.1f} s")
        print(f"then sample.n: {2 * args.n} and dvc repro again: {inc:.1f} s")
        print(f"study at n={2 * args.n}, from scratch: {full:.1f} s")
        print(f"increment / full rerun at n={2 * args.n}: {inc / full:.2f}; "
              f"increment / study at n={args.n}: {inc / base:.2f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
