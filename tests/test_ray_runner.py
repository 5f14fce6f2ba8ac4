"""The Ray runner on a local Ray instance with 2 CPUs: the real CPU model gives the same record
ids as the local runner, a raised n runs only the new keys, a worker killed mid-run is
restarted and its batch retried, a driver killed with SIGKILL resumes to the same records, and
a failing batch is retried, then reported, never dropped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from helpers import vllm_gpu

from gvstore.backends.base import Sample, SampleRequest, get_backend
from gvstore.errors import GvstoreError
from gvstore.models import SMOLLM2, resolve
from gvstore.params import RunnerParams
from gvstore.records import Generation, Prompt, Sampling, seal
from gvstore.segments import decode_segment
from gvstore.steps import generate, verify
from gvstore.store import Store
from gvstore.tasks.registry import get_task

ray = pytest.importorskip("ray")

SAMPLING = Sampling(temperature=0.7, top_p=0.9, max_tokens=12)
RAY = RunnerParams(kind="ray", local_cpus=2, actors=2)
REPO = Path(__file__).resolve().parents[1]

# The test's own back ends travel to the workers by value (tests/ is not on their path).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    from gvstore.steps.ray_runner import start

    start(RAY)
    assert ray.cluster_resources().get("CPU") == 2
    yield
    ray.shutdown()


def _prompts(k: int) -> list[Prompt]:
    task = get_task("arith")
    return [seal(task.prompt_record(it)) for it in task.items()[:k]]


def _spec(models_dir: Path, n: int, batch_size: int = 4) -> generate.GenerateSpec:
    return generate.GenerateSpec(
        model=SMOLLM2.name, model_digest=resolve(SMOLLM2, models_dir).digest,
        backend="transformers", sampling=SAMPLING, n=n, seed=3, batch_size=batch_size)


class RealFactory:
    """The real transformers back end, made on the worker; writes the worker's pid."""

    def __init__(self, models_dir: Path, pids: Path | None = None) -> None:
        self.models_dir, self.pids = models_dir, pids

    def __call__(self):  # type: ignore[no-untyped-def]
        if self.pids is not None:
            self.pids.mkdir(exist_ok=True)
            (self.pids / str(os.getpid())).touch()
        return get_backend("transformers", SMOLLM2, models_dir=self.models_dir, batch_size=4)


def _ids(root: Path) -> set[tuple[str, str]]:
    return {(r.key, r.id) for r in Store(root).iter_records(kinds=("generation",))}


def _local(models_dir: Path, root: Path, batch_size: int) -> set[tuple[str, str]]:
    """6 prompts x n=3 from the local runner, with one thread (as each 1-CPU actor has)."""
    os.environ["GVSTORE_THREADS"] = "1"
    try:
        s = generate.run(Store(root), "g", _prompts(6), _spec(models_dir, 3, batch_size),
                         RealFactory(models_dir))
    finally:
        del os.environ["GVSTORE_THREADS"]
    assert s.made == 18
    return _ids(root)


@pytest.fixture(scope="module")
def local_root(prepared_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local")
    _local(prepared_models, root, 4)
    return root


@pytest.fixture(scope="module")
def local_ids(local_root: Path) -> set[tuple[str, str]]:
    return _ids(local_root)


@pytest.fixture(scope="module")
def local_ids_b2(prepared_models: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> set[tuple[str, str]]:
    """The same at batch size 2 (another layout)."""
    return _local(prepared_models, tmp_path_factory.mktemp("local2"), 2)


def test_same_record_ids_as_the_local_runner_and_only_missing_keys_run(
        prepared_models: Path, tmp_path: Path, local_ids: set[tuple[str, str]]) -> None:
    store = Store(tmp_path / "s")
    s2 = generate.run(store, "g", _prompts(6), _spec(prepared_models, 2),
                      RealFactory(prepared_models), runner=RAY)
    # 6 prompts at batch 4: each sample index is one batch of 4 and one of 2.
    assert (s2.requested, s2.present, s2.made, s2.batches_run, s2.extra) == (12, 0, 12, 4, 0)
    s3 = generate.run(store, "g", _prompts(6), _spec(prepared_models, 3),
                      RealFactory(prepared_models), runner=RAY)
    assert (s3.requested, s3.present, s3.made, s3.batches_run) == (18, 12, 6, 2)
    got = _ids(tmp_path / "s")
    assert len(got) == 18 and got == local_ids
    gens = [r for r in store.iter_records(kinds=("generation",)) if isinstance(r, Generation)]
    assert all(g.prov is not None and g.prov.host and g.prov.duration_s > 0 for g in gens)
    assert len({g.text for g in gens}) > 1  # real, varied samples


def test_a_worker_killed_mid_run_is_restarted_and_its_batch_retried(
        prepared_models: Path, tmp_path: Path, local_ids: set[tuple[str, str]],
        local_ids_b2: set[tuple[str, str]]) -> None:
    pids = tmp_path / "pids"
    killed: list[int] = []

    def progress(done: int, todo: int, tokens: int) -> None:
        if done and not killed:  # the first batch is written: kill a worker that is busy
            victims = sorted(int(p.name) for p in pids.iterdir())
            os.kill(victims[-1], signal.SIGKILL)
            killed.append(victims[-1])

    spec = _spec(prepared_models, 3, batch_size=2)  # 9 batches of 2
    s = generate.run(Store(tmp_path / "s"), "g", _prompts(6), spec,
                     RealFactory(prepared_models, pids), runner=RAY, progress=progress)
    assert killed and s.made == 18
    assert len(list(pids.iterdir())) >= 3  # the killed actor was started again
    # The same records as the local runner with the same layout (batch 2); batch 4 gives
    # the same keys.
    assert _ids(tmp_path / "s") == local_ids_b2
    assert {k for k, _ in local_ids_b2} == {k for k, _ in local_ids}


DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_ray_runner as t
    from gvstore.steps import generate
    from gvstore.store import Store
    models = Path({models!r})
    s = generate.run(Store({root!r}), "g", t._prompts(6), t._spec(models, 3, batch_size=2),
                     t.RealFactory(models), runner=t.RAY, flush_seconds=0)
    print("made", s.made)
""")


def test_a_driver_killed_with_sigkill_resumes_to_the_same_records(
        prepared_models: Path, tmp_path: Path, local_ids_b2: set[tuple[str, str]]) -> None:
    root = tmp_path / "s"
    script = DRIVER.format(tests=str(REPO / "tests"), models=str(prepared_models),
                           root=str(root))
    env = os.environ | {"GVSTORE_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = root / "g"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and len(list(folder.glob("*.jsonl.zst"))) >= 3:  # prompts + 2
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _ids(root)
    assert 0 < len(before) < 18  # killed mid-run, with whole batches kept
    assert len(before) % 2 == 0
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"made {18 - len(before)}" in done.stdout
    after = _ids(root)
    assert before <= after and after == local_ids_b2
    verify = subprocess.run([sys.executable, "-m", "gvstore", "store", "verify", "--store",
                             str(root)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


class Flaky:
    """A deterministic back end that fails on the batches holding a poisoned seed: the first
    ``fails`` calls of each such batch (counted in files, across workers), or always."""

    name = "flaky"

    def __init__(self, counts: Path, poison: set[int], fails: int | None) -> None:
        self.counts, self.poison, self.fails = counts, poison, fails
        self.model = SMOLLM2

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        hit = sorted(r.seed for r in requests if r.seed in self.poison)
        if hit:
            mark = self.counts / str(hit[0])
            n = len(mark.read_text()) if mark.exists() else 0
            mark.write_text("x" * (n + 1))
            if self.fails is None or n < self.fails:
                raise RuntimeError(f"boom on seed {hit[0]}\nsecond line")
        return [Sample(f"answer {r.seed}", 2, "stop") for r in requests]

    def close(self) -> None:
        pass


def _flaky_spec(n: int) -> generate.GenerateSpec:
    return generate.GenerateSpec(model="m", model_digest="sha256:" + "0" * 64,
                                 backend="flaky", sampling=SAMPLING, n=n, seed=1, batch_size=3)


def test_a_failing_batch_is_retried_then_reported_and_the_others_are_kept(
        tmp_path: Path) -> None:
    prompts = _prompts(6)
    poison = {generate.plan(prompts, _flaky_spec(2))[1][0].seed}  # the second batch of 3
    counts = tmp_path / "counts"
    counts.mkdir()
    # Fails twice, then works: the two retries of the default runner get it through.
    s = generate.run(Store(tmp_path / "a"), "g", prompts, _flaky_spec(2),
                     lambda: Flaky(counts, poison, fails=2), runner=RAY)
    assert s.made == 12 and len(_ids(tmp_path / "a")) == 12
    assert (counts / str(min(poison))).read_text() == "xxx"  # 2 failures + 1 success
    # Always fails: reported with its first line, after 1 + retries tries; the rest stored.
    counts2 = tmp_path / "counts2"
    counts2.mkdir()
    store = Store(tmp_path / "b")
    with pytest.raises(GvstoreError) as err:
        generate.run(store, "g", prompts, _flaky_spec(2),
                     lambda: Flaky(counts2, poison, fails=None),
                     runner=RunnerParams(kind="ray", actors=2, retries=1))
    msg = str(err.value)
    assert "1 batch(es) (3 requests) failed on Ray after 2 tries" in msg
    assert "RuntimeError: boom on seed" in msg and "second line" not in msg
    assert len(_ids(tmp_path / "b")) == 9
    assert (counts2 / str(min(poison))).read_text() == "xx"
    # A rerun with a working back end asks only for the 3 missing requests.
    s2 = generate.run(store, "g", prompts, _flaky_spec(2),
                      lambda: Flaky(counts2, set(), fails=None), runner=RAY)
    assert (s2.present, s2.made) == (9, 3) and len(_ids(tmp_path / "b")) == 12


def test_nothing_missing_starts_no_pool(tmp_path: Path) -> None:
    prompts = _prompts(3)
    counts = tmp_path / "c"
    counts.mkdir()
    store = Store(tmp_path / "s")
    generate.run(store, "g", prompts, _flaky_spec(1), lambda: Flaky(counts, set(), None),
                 runner=RAY)

    def no_backend() -> Flaky:
        raise AssertionError("the back end must not be made")

    s = generate.run(store, "g", prompts, _flaky_spec(1), no_backend, runner=RAY)
    assert (s.requested, s.present, s.made, s.batches_run) == (3, 3, 0, 0)


def _vspec(models_dir: Path | None, method: str) -> verify.VerifySpec:
    digest = resolve(SMOLLM2, models_dir).digest if models_dir else "sha256:" + "1" * 64
    return verify.VerifySpec(method=method, verifier=SMOLLM2.name, verifier_digest=digest,
                             backend="transformers", sampling=SAMPLING, rounds=1, seed=5,
                             batch_size=8)


def _verifications(root: Path, folder: str) -> set[tuple[str, str]]:
    """(key, id) of the records in one store folder."""
    return {(r.key, r.id) for seg in (root / folder).glob("*.jsonl.zst")
            for r in decode_segment(seg)}


def test_mc_verification_on_ray_matches_the_local_runner(
        prepared_models: Path, local_root: Path, tmp_path: Path) -> None:
    """mc's log-likelihood calls through the actor pool: the same records as in-process (each
    run writes a store of its own: records are content-addressed across folders)."""
    sel = verify.select(Store(local_root), "arith")
    assert len(sel.generations) == 18
    local = verify.run(Store(tmp_path / "a"), "v", sel, _vspec(prepared_models, "mc"),
                       RealFactory(prepared_models))
    on_ray = verify.run(Store(tmp_path / "b"), "v", sel, _vspec(prepared_models, "mc"),
                        RealFactory(prepared_models), runner=RAY)
    assert local.made == on_ray.made == 18
    a, b = _verifications(tmp_path / "a", "v"), _verifications(tmp_path / "b", "v")
    assert len(a) == 18 and a == b


class Judge:
    """A deterministic tournament judge: A for an odd seed, else B."""

    name = "judge"
    model = SMOLLM2

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        return [Sample("A" if r.seed % 2 else "B", 1, "stop") for r in requests]

    def close(self) -> None:
        pass


def test_a_tournament_on_ray_plays_the_same_matches(local_root: Path, tmp_path: Path) -> None:
    sel = verify.select(Store(local_root), "arith")
    spec = _vspec(None, "tournament")
    a = verify.run(Store(tmp_path / "a"), "t", sel, spec, Judge)
    b = verify.run(Store(tmp_path / "b"), "t", sel, spec, Judge, runner=RAY)
    assert a.made == b.made == 6  # 6 prompts, one bracket of 2 each
    assert (b.rounds_played, b.batches_run) == (1, 1)
    assert _verifications(tmp_path / "a", "t") == _verifications(tmp_path / "b", "t")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gvstore", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    """An address that does not answer fails in seconds (Ray alone retries for minutes); Ray
    options without the ray runner are refused; a params file may say `runner: ray`."""
    bad = _cli("generate", "--store", str(tmp_path / "s"), "--prompts", "1", "--n", "1",
               "--models-dir", str(tmp_path / "m"), "--runner", "ray", "--ray-address",
               "127.0.0.1:1", "-q")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: cannot reach the Ray cluster at '127.0.0.1:1'")
    assert len(bad.stderr.strip().splitlines()) == 1
    alone = _cli("verify", "--method", "mc", "--ray-actors", "2", "-q")
    assert alone.returncode == 1
    assert alone.stderr.strip() == ("error: --ray-address, --ray-actors and --ray-gpus need "
                                    "--runner ray")
    from gvstore.params import load

    text = (REPO / "params.yaml").read_text()
    assert "runner:\n  kind: local" in text
    (tmp_path / "p.yaml").write_text(text.replace("runner:\n  kind: local", "runner:\n  kind: ray"))
    assert load(tmp_path / "p.yaml").runner.kind == "ray"
    short = text.split("runner:\n")[0] + "runner: ray\n" + text.split("retries: 2")[1].split(
        "\n", 1)[1]
    (tmp_path / "q.yaml").write_text(short)
    assert load(tmp_path / "q.yaml").runner == RunnerParams(kind="ray")
    (tmp_path / "r.yaml").write_text(short.replace("runner: ray", "runner: {kind: ray, actors: 0}"))
    with pytest.raises(GvstoreError, match="runner.actors must be >= 1"):
        load(tmp_path / "r.yaml")


class VllmFactory:
    """The real vllm back end (a small share of the GPU, so that the in-process run and the
    actor fit side by side)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def __call__(self):  # type: ignore[no-untyped-def]
        return get_backend("vllm", SMOLLM2, models_dir=self.models_dir, batch_size=4,
                           gpu_memory_utilization=0.25, dtype="float32", max_model_len=2048,
                           enforce_eager=True)



@pytest.mark.gpu
@pytest.mark.skipif(not vllm_gpu(), reason="requires vllm (the gpu extra) and a CUDA GPU")
def test_vllm_through_ray_on_a_gpu_actor(prepared_models: Path, tmp_path: Path) -> None:
    """The vllm back end in an actor that holds a GPU: the same records as in-process."""
    spec = generate.GenerateSpec(
        model=SMOLLM2.name, model_digest=resolve(SMOLLM2, prepared_models).digest,
        backend="vllm", sampling=SAMPLING, n=2, seed=3, batch_size=4)
    local = generate.run(Store(tmp_path / "a"), "g", _prompts(6), spec,
                         VllmFactory(prepared_models))
    on_gpu = RunnerParams(kind="ray", actors=1, num_gpus=1)
    s = generate.run(Store(tmp_path / "b"), "g", _prompts(6), spec,
                     VllmFactory(prepared_models), runner=on_gpu)
    assert local.made == s.made == 12
    assert _ids(tmp_path / "a") == _ids(tmp_path / "b")


def test_the_cli_generates_through_ray_as_a_user_runs_it(
        prepared_models: Path, tmp_path: Path) -> None:
    """`gvstore generate --runner ray` with its progress bar (whose model-loading notice stays
    on the driver while the plain factory goes to the workers), then the same command on the
    local runner: the keys are the same, so it has nothing to do."""
    args = ["generate", "--store", str(tmp_path / "s"), "--prompts", "3", "--n", "2",
            "--max-tokens", "8", "--batch-size", "2", "--models-dir", str(prepared_models)]
    env = os.environ | {"GVSTORE_NO_PROGRESS": "", "GVSTORE_THREADS": "1"}
    ray_run = subprocess.run([sys.executable, "-m", "gvstore", *args, "--runner", "ray",
                              "--ray-actors", "2", "--json"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert ray_run.returncode == 0, ray_run.stderr[-2000:]
    got = json.loads(ray_run.stdout)
    assert (got["requested"], got["generated"], got["batches_run"]) == (6, 6, 4)
    assert "Traceback" not in ray_run.stderr
    again = _cli(*args, "--json")
    assert again.returncode == 0, again.stderr
    local = json.loads(again.stdout)
    assert (local["requested"], local["present"], local["generated"]) == (6, 6, 0)


class Crash:
    """A back end whose process dies (``os._exit``) on the batches holding a seed divisible
    by 7: every actor that reaches such a batch dies."""

    name = "crash"
    model = SMOLLM2

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        if any(r.seed % 7 == 0 for r in requests):
            os._exit(3)
        return [Sample(f"answer {r.seed}", 2, "stop") for r in requests]

    def close(self) -> None:
        pass


def test_a_batch_that_kills_every_actor_fails_the_run_instead_of_looping(
        tmp_path: Path) -> None:
    """Ray restarts a dead actor and retries its batch a few times (CRASH_RESTARTS); a batch
    that kills each actor it reaches then fails the run with one line, and a rerun with a
    back end that works makes what is missing."""
    prompts = _prompts(12)
    spec = _flaky_spec(1)
    assert any(r.seed % 7 == 0 for b in generate.plan(prompts, spec) for r in b)
    store = Store(tmp_path / "s")
    t0 = time.monotonic()
    with pytest.raises(GvstoreError, match=r"^Ray failed: ActorDiedError: .*a rerun asks only"):
        generate.run(store, "g", prompts, spec, Crash, runner=RAY, flush_seconds=0)
    assert time.monotonic() - t0 < 120
    counts = tmp_path / "c"
    counts.mkdir()
    s = generate.run(store, "g", prompts, spec, lambda: Flaky(counts, set(), None), runner=RAY)
    assert s.present + s.made == 12 and len(_ids(tmp_path / "s")) == 12
