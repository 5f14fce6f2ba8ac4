"""``params.yaml``, parsed into typed structs before any model loads.

A typo or a wrong type is a one-line error naming the key path (``at $.sample.n``); the
checks that need more than types (a method that does not exist, a filter spec that does not
parse, a model named in the study but missing from the model table, a task whose data file
is missing) follow in ``validate``. ``gvstore params validate [FILE]`` runs all of them
without touching a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec

from gvstore.backends.base import names as backend_names
from gvstore.errors import GvstoreError
from gvstore.io import read_yaml
from gvstore.models import ModelSpec, model_table
from gvstore.names import check_name, child
from gvstore.params_check import check_bounds, check_names
from gvstore.records import Sampling


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class Base(_Strict, frozen=True, forbid_unknown_fields=True):
    seed: int = 0
    """Base seed: per-request seeds, bootstrap and splits derive from it."""
    store: str = "data/store"
    models_dir: str = "data/models"
    reports: str = "reports"


class Study(_Strict, frozen=True, forbid_unknown_fields=True):
    """What ``dvc.yaml`` expands over."""

    models: list[str]
    """Every model the study uses (prepare-model runs for each)."""
    generators: list[str]
    verifiers: list[str]
    tasks: list[str]
    methods: list[str]


class TaskEntry(_Strict, frozen=True, forbid_unknown_fields=True):
    split: str = "test"
    prompts: int | None = None
    """How many items (None: all after ``offset``)."""
    offset: int = 0
    select: Literal["first", "stratified"] = "first"
    """first: items offset.. of the split in order; stratified: a draw seeded by base.seed,
    spread evenly over the task's strata (``gvstore.tasks.select``, docs/tasks.md)."""
    kshot: int | None = None
    """Exemplars per prompt (None: the task's default)."""
    data: str | None = None
    """A data file or folder overriding the default location."""


class SampleParams(_Strict, frozen=True, forbid_unknown_fields=True):
    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    max_tokens: int = 256
    batch_size: int = 8
    backend: str = "transformers"

    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                        max_tokens=self.max_tokens)


class VerifyParams(_Strict, frozen=True, forbid_unknown_fields=True):
    repeats: int = 1
    """Verifications per generation for cot methods (variance, appendix D.4)."""
    tournament_rounds: int = 3
    """Single-elimination rounds; brackets of 2**rounds samples."""
    max_tokens: int = 128
    temperature: float = 0.7
    batch_size: int = 8
    backend: str = "transformers"


class WeightsParams(_Strict, frozen=True, forbid_unknown_fields=True):
    specs: list[str] = msgspec.field(default_factory=list)


class ReportParams(_Strict, frozen=True, forbid_unknown_fields=True):
    specs: list[str] = msgspec.field(default_factory=lambda: ["mc:quantile=0.8"])
    sweeps: list[str] = msgspec.field(default_factory=lambda: ["mc:quantile"])
    passk: list[int] = msgspec.field(default_factory=lambda: [1, 2, 4, 8])
    utility: Literal["strict", "flexible"] = "strict"
    select_on: Literal["gap", "rel_gap"] = "gap"
    resamples: int = 1000


GROUND_TRUTH = "ground_truth"
SELF = "self"


class RoundsParams(_Strict, frozen=True, forbid_unknown_fields=True):
    """Iterative self-improvement (the paper's section 5), unrolled in ``dvc.yaml``: round 0's
    model generates, its samples are graded, verified and filtered, the kept ones train round
    1's model, which generates again, and so on. Off while ``start`` is empty."""

    start: list[str] = msgspec.field(default_factory=list)
    """Round 0's model, a one-element list (``[]``: no rounds). It must be in study.models."""
    steps: dict[str, str] = msgspec.field(default_factory=dict)
    """``new model: the model it is trained from``, in round order: the first is trained from
    ``start``, each later one from the one before (dvc.yaml needs the pairs spelled out)."""
    task: str = "arith"
    prompts: TaskEntry | None = None
    """The rounds' prompts (default: ``tasks.<task>``): every round trains on its samples of
    these, and the report's ``train`` figures are measured on them."""
    heldout: TaskEntry | None = None
    """Held-out prompts of the same task (None: none): every round generates, grades and
    verifies them too and the report shows them beside the training prompts (``held-out``),
    but they never reach a training set. No (split, item) of them may be a training prompt."""
    verifier: str = SELF
    """``self`` (each round's model verifies its own samples: self-improvement), a model of
    study.models (a fixed verifier: the appendix D.3 ablation), or ``ground_truth`` (keep what
    the grader marks correct: the oracle ablation)."""
    filter: str = "cot_binary:tau=1"
    """The filter spec that picks training data from the verifier's scores (ignored for
    ground_truth, which keeps samples with strict utility 1)."""
    update: Literal["sft", "rpo"] = "sft"
    """sft: rejection-sampling fine-tuning on the kept samples; rpo: DPO + NLL on pairs."""
    preset: Literal["auto", "paper", "cpu"] = "auto"
    """Training hyperparameter preset (auto: paper on a CUDA machine, else cpu)."""
    hyperparameters: dict[str, Any] = msgspec.field(default_factory=dict)
    """Values over the preset (see `gvstore finetune --help` for each)."""
    threads: int | None = None
    """CPU threads for torch while training (None: torch's default)."""
    dir: str = "data/rounds"
    """Training sets (``train/<model>.jsonl``) and trained models (``models/<model>``)."""
    folders: dict[str, str] | None = None
    """Every round's model, round 0 first, and the folder of its weights (round 0's in
    base.models_dir, the others in ``<dir>/models``): ``start`` and ``steps`` with their folders,
    spelled out because dvc.yaml's round-generate/grade/verify loop over one dict. None (not
    written): derived (``Params.round_folders``); written, it must equal that."""

    @property
    def enabled(self) -> bool:
        return bool(self.start)

    def chain(self) -> list[str]:
        """The round models in round order (round 0 first)."""
        return [*self.start, *self.steps]

    def round_of(self, model: str) -> int:
        chain = self.chain()
        if model not in chain:
            raise GvstoreError(f"{model!r} is not a model of the rounds "
                               f"(rounds.start and rounds.steps: {', '.join(chain) or 'none'})")
        return chain.index(model)

    def parent_of(self, model: str) -> str:
        if model not in self.steps:
            raise GvstoreError(f"{model!r} is not trained in the rounds (rounds.steps)")
        return self.steps[model]

    def model_dir(self, model: str) -> Path:
        return child(Path(self.dir) / "models", model, "round model name")

    def train_file(self, model: str) -> Path:
        """The training set of ``model`` (made from its parent's round)."""
        return child(Path(self.dir) / "train", f"{check_name(model, 'round model name')}.jsonl",
                     "training file name")


class RunnerParams(_Strict, frozen=True, forbid_unknown_fields=True):
    """Where generate and verify make their model calls (docs/scale.md). ``runner: ray`` is
    short for ``runner: {kind: ray}``."""

    kind: Literal["local", "ray"] = "local"
    """local: in this process; ray: on an actor pool of a Ray cluster or local instance."""
    address: str | None = None
    """The Ray cluster to attach to (``ray.init(address=...)``); None: ``$RAY_ADDRESS``,
    else a local Ray instance on this machine."""
    actors: int | None = None
    """Actors in the pool (each loads the model once); None: as many as the CPUs (or GPUs)
    of the cluster hold for ``num_cpus`` (``num_gpus``) each."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    retries: int = 2
    """How many more times a failed batch runs before the step reports it."""
    local_cpus: int | None = None
    """CPUs of a local Ray instance (None: all of this machine's)."""


class Params(_Strict, frozen=True, forbid_unknown_fields=True):
    study: Study
    base: Base = msgspec.field(default_factory=Base)
    models: dict[str, ModelSpec] = msgspec.field(default_factory=dict)
    """The model table: name -> row (``ModelSpec``; a file's row has no ``name``, its key is
    the name)."""
    tasks: dict[str, TaskEntry] = msgspec.field(default_factory=dict)
    sample: SampleParams = msgspec.field(default_factory=SampleParams)
    verify: VerifyParams = msgspec.field(default_factory=VerifyParams)
    weights: WeightsParams = msgspec.field(default_factory=WeightsParams)
    report: ReportParams = msgspec.field(default_factory=ReportParams)
    rounds: RoundsParams = msgspec.field(default_factory=RoundsParams)
    runner: RunnerParams = msgspec.field(default_factory=RunnerParams)

    def model(self, name: str) -> ModelSpec:
        spec = self.models.get(name)
        if spec is None:
            raise GvstoreError(f"model {name!r} is not in the model table (params: models)")
        return spec

    def task(self, name: str) -> TaskEntry:
        return self.tasks.get(name, TaskEntry())

    def round_folders(self) -> dict[str, str]:
        """``rounds.folders`` as ``start`` and ``steps`` imply it (see ``RoundsParams``)."""
        r = self.rounds
        return {m: str(Path(self.base.models_dir) / m if i == 0 else r.model_dir(m))
                for i, m in enumerate(r.chain())}

    def rounds_prompts(self) -> TaskEntry:
        """The prompts the rounds generate for."""
        r = self.rounds
        return r.prompts if r.prompts is not None else self.task(r.task)


def load(path: Path | str = "params.yaml") -> Params:
    """Parse and type-check a params file (no semantic checks: see ``validate``): strict
    YAML (``read_yaml``), types, names that become paths (``check_names``) and the bounds of
    every number (``check_bounds``)."""
    p = Path(path)
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise GvstoreError(f"{p}: expected a mapping of sections at the top")
    rounds = raw.get("rounds")
    if not isinstance(rounds, dict) or "start" not in rounds or "steps" not in rounds:
        raise GvstoreError(f"{p}: dvc.yaml needs rounds.start and rounds.steps; add "
                           "`rounds: {start: [], steps: {}}` for a study without rounds "
                           "(docs/rounds.md)")
    # Table entries first, one by one, so that an error names the entry (msgspec's own
    # path would say `$.models[...]`); a model row gets its name from its key.
    models, tasks = raw.get("models"), raw.get("tasks")
    if isinstance(raw.get("runner"), str):  # `runner: ray`
        raw = raw | {"runner": {"kind": raw["runner"]}}
    try:
        if isinstance(models, dict):
            raw = raw | {"models": model_table(models)}
        if isinstance(tasks, dict):
            for name, value in tasks.items():
                _task_entry(name, value)
    except GvstoreError as exc:
        raise GvstoreError(f"{p}: {exc}") from exc
    try:
        params = msgspec.convert(raw, Params)
    except msgspec.ValidationError as exc:
        raise GvstoreError(f"{p}: {exc}") from exc
    try:
        check_names(params)
        check_bounds(params)
    except GvstoreError as exc:
        raise GvstoreError(f"{p}: {exc}") from None
    return params


def _task_entry(name: str, value: Any) -> TaskEntry:
    try:
        return msgspec.convert(value if value is not None else {}, TaskEntry)
    except msgspec.ValidationError as exc:
        msg = str(exc).replace("`$", f"`$.tasks.{name}", 1)
        if "`$" not in str(exc):
            msg += f" - at `$.tasks.{name}`"
        raise GvstoreError(msg) from exc


def validate(params: Params, *, check_data: bool = True) -> list[str]:
    """Every check that needs more than types; raises on the first problem, returns notes.
    (The checks are ``gvstore.params_check``'s, run in this order.)"""
    from gvstore import params_check as check

    check.check_study(params)
    check_names(params)  # again: a Params may be built without load()
    check_bounds(params)
    params.sample.sampling().check()  # the one sampling validation (records.Sampling.check)
    for key, backend in (("sample", params.sample.backend), ("verify", params.verify.backend)):
        if backend not in backend_names():
            raise GvstoreError(f"{key}.backend must be one of {', '.join(backend_names())}")
    check.check_specs(params)
    notes: list[str] = []
    if params.rounds.enabled:
        notes += check.check_rounds(params, check_data)
    elif params.rounds.steps:
        raise GvstoreError("rounds.steps needs rounds.start (round 0's model)")
    notes += check.check_round_folders(params)
    return notes + check.check_tasks(params, check_data)
