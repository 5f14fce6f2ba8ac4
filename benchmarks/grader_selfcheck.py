"""Feed every reference answer of GSM8K and MATH back as a model answer in the required form.

Prints the strict and flexible rates and lists the MATH items that do not grade as correct.
Needs the data (``GVSTORE_DATA`` or ``data/raw``). Usage: ``python benchmarks/grader_selfcheck.py
[--lm-eval]``; ``--lm-eval`` checks the separately named ``<task>:lm-eval`` graders instead
(MATH through SymPy alone: minutes, and references SymPy cannot parse come back wrong).
"""

from __future__ import annotations

import sys
import time

from gvstore.tasks import get_task


def main() -> int:
    variant = "lm-eval" if "--lm-eval" in sys.argv[1:] else None
    gsm = get_task("gsm8k", variant=variant)
    for split in ("test", "train"):
        items = gsm.items(split)
        s = f = 0.0
        for it in items:
            r = gsm.grade(f"Some reasoning. The answer is {it.reference}.", it.reference)
            s, f = s + r.strict, f + r.flexible
        print(f"{gsm.grader_id} {split}: {len(items)} items, strict {s / len(items):.4%}, "
              f"flexible {f / len(items):.4%}")
    math = get_task("math", variant=variant)
    for split in ("test", "math500"):
        items = math.items(split)
        start = time.monotonic()
        s = f = 0.0
        bad = []
        for it in items:
            text = ("We work it out.\nFinal Answer: The final answer is "
                    f"${it.reference}$. I hope it is correct.")
            r = math.grade(text, it.reference)
            s, f = s + r.strict, f + r.flexible
            if r.strict != 1 or r.flexible != 1:
                bad.append((it.item_id, it.reference, r))
        print(f"{math.grader_id} {split}: {len(items)} items, strict {s / len(items):.4%}, "
              f"flexible {f / len(items):.4%} ({time.monotonic() - start:.1f} s)")
        for item_id, ref, r in bad:
            print(f"  exception {item_id}: reference {ref!r} -> strict {r.strict}, "
                  f"flexible {r.flexible}, extracted {r.extracted!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
