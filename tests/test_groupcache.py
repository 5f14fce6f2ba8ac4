"""The group cache (``gvstore.analysis.groupcache``): a warm ``Dataset`` gives exactly the cold
numbers without reading the projections; new segments, other views, damaged files and
read-only stores are handled; ``store verify`` checks and fixes its files."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import StoreBuilder

from gvstore.analysis import groupcache
from gvstore.analysis.frames import Dataset, Filters
from gvstore.analysis.gap import draw_counts, gap_table
from gvstore.analysis.passk import pass_at_k_table
from gvstore.analysis.specs import parse, parse_template
from gvstore.analysis.sweep import sweep
from gvstore.journal import MissingSegment
from gvstore.replay import Projections
from gvstore.store import Store

SPECS = ["cot_score:tau=8", "cot_score:quantile=0.5", "mc:quantile=0.8,nulls=keep",
         "mean(mc,cot_score):quantile=0.5", "and(mc:tau=0.5,cot_score:tau=5)",
         "or(mc:exp=0.5,cot_score:tau=9)", "tournament:rounds=1"]


def build(root: Path) -> StoreBuilder:
    """Two generators, two verifiers, ties, nulls, an ungraded sample, a single sample, an
    all-correct and an all-wrong prompt, repeats, tournament matches."""
    b = StoreBuilder(root)
    for model in ("g", "h"):
        g = b.gens(b.prompt("p1"), [1, 0, 0, 0], model=model)
        b.scores(g, "cot_score", [9, 8, 8, 1])
        b.repeats(g, "mc", [[0.9, 0.7], [0.2, None], [None, None], [0.5, 0.5]])
        b.scores(g, "mc", [0.1, 0.3, 0.3, 0.9], verifier="w")
        b.match(b.prompt("p1"), g[0], g[1], g[0], 0)
        b.match(b.prompt("p1"), g[2], g[3], None, 0)
        g = b.gens(b.prompt("p2"), [1, 1, 1], model=model)  # all correct
        b.scores(g, "cot_score", [2, None, 9])
        b.scores(g, "mc", [0.4, 0.4, 0.6])
        g = b.gens(b.prompt("p3"), [0, 0], model=model)  # all wrong
        b.scores(g, "cot_score", [3, 3])
        b.scores(g, "mc", [0.8, 0.1])
        b.match(b.prompt("p3"), g[0], g[1], g[1], 0)
        g = b.gens(b.prompt("p4"), [0], model=model)  # a single sample
        b.scores(g, "cot_score", [10])
        g = b.gens(b.prompt("p5"), [1, None, 0], model=model)  # one ungraded
        b.scores(g, "cot_score", [7, 9, None])
        b.scores(g, "mc", [0.7, 0.2, 0.9])
    return b


def numbers(ds: Dataset) -> str:
    """Every gap, sweep and pass@k number of a dataset, as text (NaN equal to NaN)."""
    out: list[object] = []
    for spec in SPECS:
        out += [r.to_dict() for r in gap_table(ds, [parse(spec)], resamples=50, seed=3)]
    for tmpl in ("cot_score:tau", "mc:quantile", "mean(mc,cot_score):quantile"):
        out += [r.to_dict() for r in sweep(ds, parse_template(tmpl), resamples=30)]
    out.append(pass_at_k_table(ds.base_frame(), [1, 2, 3]).to_dicts())
    return repr(out)


def group_sets(root: Path) -> list[Path]:
    return sorted((root / ".cache" / "proj").glob("*g*.manifest.json"))


def views(root: Path) -> set[str]:
    """The store views that have a cached slices set (``<proj key>g<view>``)."""
    return {p.name.removesuffix(".manifest.json") for p in group_sets(root)
            if len(p.name.removesuffix(".manifest.json")) == 32 + 1 + 16}


def test_warm_equals_cold_and_reads_no_projections(tmp_path: Path) -> None:
    store = build(tmp_path / "s").write()
    cold = numbers(Dataset(Projections(store), cache=False))
    assert group_sets(store.root) == []
    first = Dataset(Projections(store))
    assert numbers(first) == cold  # builds and saves the sets
    assert first.proj._frames is not None and len(views(store.root)) == 1
    def gaps(ds: Dataset) -> str:
        return repr([r.to_dict() for s in SPECS
                     for r in gap_table(ds, [parse(s)], resamples=50, seed=3)])

    warm = Dataset(Projections(store))
    assert gaps(warm) == gaps(Dataset(Projections(store), cache=False))
    assert warm.proj._frames is None  # gaps (tournament too) from the cache alone
    assert numbers(Dataset(Projections(store))) == cold
    g = Dataset(Projections(store)).groups(("mc",))[0]
    # warm arrays are read-only (shared with the page cache): writing to one is an error,
    # never a change to the cache file
    assert isinstance(g.utility, np.ndarray) and not g.utility.flags.writeable
    with pytest.raises(ValueError):
        g.utility[0] = 0.5
    assert type(g.utility) is np.ndarray and g.gen.dtype == np.uint64


def test_new_segment_rebuilds(tmp_path: Path) -> None:
    b = build(tmp_path / "s")
    store = b.write()
    before = numbers(Dataset(Projections(store)))
    g = b.gens(b.prompt("p9"), [1, 0])
    b.scores(g, "cot_score", [1, 9])
    b.scores(g, "mc", [0.3, 0.6])
    b.write("t2")
    after = Dataset(Projections(store))
    assert numbers(after) == numbers(Dataset(Projections(store), cache=False)) != before
    assert after.proj._frames is not None  # rebuilt from the projections
    assert len(views(store.root)) == 1  # the old sets went with the old projections


@pytest.mark.parametrize("damage", ["flip", "truncate", "index", "manifest"])
def test_damaged_cache_file_is_rebuilt_not_used(tmp_path: Path, damage: str) -> None:
    store = build(tmp_path / "s").write()
    cold = numbers(Dataset(Projections(store), cache=False))
    numbers(Dataset(Projections(store)))
    folder = store.root / ".cache" / "proj"
    victim = next(folder.glob("*g*-0.utility.npy"))
    good = victim.read_bytes()
    man = next(p for p in group_sets(store.root) if p.name.startswith(victim.name[:49]))
    if damage == "flip":
        raw = bytearray(good)
        raw[-1] ^= 0x40  # same size, one bit off
        victim.write_bytes(bytes(raw))
    elif damage == "truncate":
        victim.write_bytes(good[:-8])
    elif damage == "index":  # a valid manifest whose index says something else
        data = json.loads(man.read_text())
        data["index"]["slices"][0][1] = "other"
        man.write_text(json.dumps(data))
    else:
        man.write_text("{not json")
    assert (store.verify().damaged_cache == []) is (damage == "index")
    ds = Dataset(Projections(store))
    assert numbers(ds) == cold
    assert victim.read_bytes() == good  # saved again, intact
    assert store.verify().damaged_cache == []


def test_store_verify_reports_and_fix_deletes_a_damaged_set(tmp_path: Path) -> None:
    store = build(tmp_path / "s").write()
    numbers(Dataset(Projections(store)))
    victim = next((store.root / ".cache" / "proj").glob("*g*m*-0.score.npy"))
    raw = bytearray(victim.read_bytes())
    raw[-3] ^= 1
    victim.write_bytes(bytes(raw))
    rep = store.verify()
    assert [p for p, _ in rep.damaged_cache] == [str(victim)]
    set_name = victim.name.split("-", 1)[0]
    fixed = store.verify(fix=True).fixed
    assert any(str(victim) in line for line in fixed)
    assert not list(victim.parent.glob(set_name + "*"))  # manifest and every file
    rep = store.verify()
    assert rep.damaged_cache == [] and rep.unlisted_cache == []
    assert any(p.name.startswith(set_name[:32] + "-") for p in victim.parent.iterdir())
    assert numbers(Dataset(Projections(store))) == numbers(
        Dataset(Projections(store), cache=False))


def test_views_are_separate_entries(tmp_path: Path) -> None:
    store = build(tmp_path / "s").write()
    kinds = [dict(), dict(utility="flexible"), dict(grader="t"), dict(utility=None),
             dict(filters=Filters(generators=("h",))), dict(filters=Filters(verifiers=("w",)))]
    for kw in kinds:
        ds = Dataset(Projections(store), **kw)  # type: ignore[arg-type]
        ds.groups(("mc",))
        cold = Dataset(Projections(store), cache=False, **kw)  # type: ignore[arg-type]
        assert repr([(g.key, g.utility, g.scores) for g in ds.groups(("mc",))]) == repr(
            [(g.key, g.utility, g.scores) for g in cold.groups(("mc",))])
    assert len(views(store.root)) == len(kinds)
    for kw in kinds:  # and each is read back warm
        ds = Dataset(Projections(store), **kw)  # type: ignore[arg-type]
        ds.groups(("mc",))
        assert ds.proj._frames is None


def test_read_only_store_falls_back_to_user_cache_then_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = build(tmp_path / "s").write()
    cold = numbers(Dataset(Projections(store), cache=False))
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    real = groupcache.write_atomic
    refuse = [store.root]

    def write(path: Path, data: bytes | str, *, durable: bool = True) -> None:
        if any(path.is_relative_to(r) for r in refuse):
            raise OSError(errno.EROFS, "Read-only file system")
        real(path, data, durable=durable)

    monkeypatch.setattr(groupcache, "write_atomic", write)
    monkeypatch.setattr(groupcache.projcache, "write_atomic", write)
    monkeypatch.setattr("gvstore.replay.write_atomic", write)
    assert numbers(Dataset(Projections(store))) == cold
    assert group_sets(store.root) == [] and list(xdg.rglob("*g*.npy"))
    warm = Dataset(Projections(store))
    warm.groups(("mc", "cot_score"))
    assert warm.proj._frames is None  # served from the user cache
    refuse.append(xdg)
    for p in xdg.rglob("*"):
        if p.is_file():
            p.unlink()
    assert numbers(Dataset(Projections(store))) == cold  # memory only
    assert not [p for p in xdg.rglob("*") if p.is_file()]


def test_bootstrap_counts_cached_are_the_drawn_ones(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = build(tmp_path / "s").write()
    Dataset(Projections(store)).groups(("mc",))  # opens the cache the counts go to
    monkeypatch.setattr(groupcache, "COUNTS_MIN", 1)
    draw_counts.cache_clear()
    want = np.stack([np.bincount(row, minlength=7) for row in
                     np.random.default_rng(5).integers(0, 7, size=(300, 7))]).astype(float)
    assert np.array_equal(draw_counts(7, 300, 5), want)
    draw_counts.cache_clear()
    assert groupcache.load_counts(7, 300, 5) is not None
    assert np.array_equal(draw_counts(7, 300, 5), want)  # read back
    victim = next((store.root / ".cache" / "proj").glob("*b7x300s5-counts.npy"))
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 1
    victim.write_bytes(bytes(raw))
    draw_counts.cache_clear()
    assert groupcache.load_counts(7, 300, 5) is None  # damaged: drawn again
    assert np.array_equal(draw_counts(7, 300, 5), want)
    draw_counts.cache_clear()


def test_warm_gap_and_sweep_import_no_polars(tmp_path: Path) -> None:
    store = build(tmp_path / "s").write()
    Dataset(Projections(store)).groups(("mc", "cot_score"))
    script = (
        "import sys\n"
        "from gvstore.store import Store\n"
        "from gvstore.replay import Projections\n"
        "from gvstore.analysis.frames import Dataset\n"
        "from gvstore.analysis.gap import gap_table\n"
        "from gvstore.analysis.sweep import sweep\n"
        "from gvstore.analysis.specs import parse, parse_template\n"
        f"ds = Dataset(Projections(Store({str(store.root)!r})))\n"
        "for s in ['mc:quantile=0.8', 'and(mc:tau=0.5,cot_score:tau=5)',\n"
        "          'mean(mc,cot_score):quantile=0.5', 'or(mc:tau=0.2,cot_score:exp=1)']:\n"
        "    assert gap_table(ds, [parse(s)], resamples=20)\n"
        "assert sweep(ds, parse_template('mc:tau'), resamples=20)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "             ('polars', 'pyarrow', 'matplotlib', 'torch', 'sklearn')))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stderr
    imp = subprocess.run([sys.executable, "-X", "importtime", "-m", "gvstore", "--store",
                          str(store.root), "gap", "mc:quantile=0.8", "--resamples", "0",
                          "--json"], capture_output=True, text=True, check=True)
    heavy = [ln for ln in imp.stderr.splitlines() if ln.startswith("import time")
             and ln.split("|")[-1].strip().split(".")[0] in (
                 "polars", "matplotlib", "torch", "sklearn", "pydantic", "duckdb")]
    # (pydantic: typer 0.29 coerces every option through it, 0.1 s per start; pinned < 0.29)
    assert heavy == [] and json.loads(imp.stdout)["results"]


def test_store_view_gone_is_not_recreated(tmp_path: Path) -> None:
    store = build(tmp_path / "s").write()
    gc = groupcache.GroupCache.open(Projections(store), utility="strict", grader=None,
                                    filters=Filters())
    assert gc is not None
    other = Store(tmp_path / "gone")
    gc.root = other.root
    gc.dirs = [other.root / ".cache" / "proj"]
    gc.write("x", {}, {"a": np.zeros(3)}, of_frames=False)
    assert not other.root.exists()


def test_a_deleted_segment_is_an_error_even_when_warm(tmp_path: Path) -> None:
    b = build(tmp_path / "s")
    store = b.write()
    g = b.gens(b.prompt("p9"), [1, 0])
    b.scores(g, "mc", [0.3, 0.6])
    b.write("t2")
    numbers(Dataset(Projections(store)))  # warm now
    next((store.root / "t2").glob("*.jsonl.zst")).unlink()
    with pytest.raises(MissingSegment):
        Dataset(Projections(store)).groups(("mc",))
    skipped: list[object] = []
    sets = group_sets(store.root)
    ds = Dataset(Projections(Store(store.root, skip_damaged=True, on_skip=skipped.append)))
    cold = Dataset(Projections(Store(store.root, skip_damaged=True)), cache=False)
    assert numbers(ds) == numbers(cold)
    assert skipped and ds.proj._frames is not None  # read past it, from the segments
    assert group_sets(store.root) == sets  # and nothing of that build is cached
