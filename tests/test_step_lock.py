"""A step on a folder another process is writing stops before it plans, loads a model or
repeats the other's work: the folder lock is taken first (issue 12, item 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gvstore import synth
from gvstore.lock import StoreLocked
from gvstore.records import Sampling
from gvstore.steps import generate
from gvstore.steps.verify import Selection, VerifySpec, select
from gvstore.steps.verify import run as verify_run
from gvstore.store import Store
from gvstore.tasks.arith import Arith

HOLD = ("import sys, time; from pathlib import Path; from gvstore import lock; "
        "f = Path(sys.argv[1]); f.mkdir(parents=True, exist_ok=True); lock.acquire(f); "
        "print('held', flush=True); sys.stdin.read()")


def _hold(folder: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def _factory_never_called() -> object:
    raise AssertionError("the back end was made although the folder is locked")


def test_generate_on_a_locked_folder_stops_before_the_backend(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    task = Arith()
    prompts = [task.prompt_record(it) for it in task.items()[:2]]
    spec = generate.GenerateSpec(model="m", model_digest="sha256:" + "0" * 64,
                                 backend="transformers",
                                 sampling=Sampling(temperature=0.7, top_p=0.9, max_tokens=8),
                                 n=2, batch_size=2)
    holder = _hold(store.root / "gen")
    try:
        with pytest.raises(StoreLocked, match=f"pid {holder.pid}"):
            generate.run(store, "gen", prompts, spec, _factory_never_called)  # type: ignore[arg-type]
    finally:
        holder.communicate("")
    assert store.segments() == []


def test_verify_on_a_locked_folder_stops_before_the_backend(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with store.writer("synth") as w:
        synth.write(w.add, synth.SynthConfig(prompts=2, samples=2, seed=0, methods=()))
    before = {p.name for p in store.segments()}
    selection: Selection = select(store, "synth")
    assert len(selection.generations) == 4
    spec = VerifySpec(method="mc", verifier="v", verifier_digest="sha256:" + "1" * 64,
                      backend="transformers")
    holder = _hold(store.root / "ver")
    try:
        with pytest.raises(StoreLocked, match=f"pid {holder.pid}"):
            verify_run(store, "ver", selection, spec, _factory_never_called)  # type: ignore[arg-type]
    finally:
        holder.communicate("")
    assert {p.name for p in store.segments()} == before


def test_pack_joins_short_rows_whole_and_cuts_long_ones_alone() -> None:
    from gvstore.steps.base import pack

    two = [[f"p{j}i{i}" for j in range(2)] for i in range(16)]  # 2 prompts x n = 16
    assert pack(two, 32) == [[x for row in two for x in row]]
    assert [len(b) for b in pack(two, 5)] == [4, 4, 4, 4, 4, 4, 4, 4]  # never a split row
    long = [list(range(35)), list(range(35, 70))]  # 35 prompts: each row alone, as cut
    assert [len(b) for b in pack(long, 32)] == [32, 3, 32, 3]
    mixed = [[1, 2], [3, 4], list(range(10, 50)), [5]]
    assert pack(mixed, 32) == [[1, 2, 3, 4], list(range(10, 42)), list(range(42, 50)), [5]]
    # raising n appends rows: every earlier full batch keeps its layout
    assert pack(two[:8], 8)[:2] == pack(two, 8)[:2]
    assert pack([], 8) == []
