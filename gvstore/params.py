"""``params.yaml``, parsed into typed structs before any model loads.

A typo or a wrong type is a one-line error naming the key path (``at $.sample.n``); the
checks that need more than types (a method that does not exist, a filter spec that does not
parse, a model named in the study but missing from the model table, a task whose data file
is missing) follow in ``validate``. ``gvstore params validate [FILE]`` runs all of them
without touching a model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from gvstore.errors import GvstoreError
from gvstore.models import ModelSpec
from gvstore.records import Sampling

METHODS = ("mc", "cot_binary", "cot_score", "tournament")
BACKENDS = ("transformers", "vllm", "openai")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class Base(_Strict, frozen=True, forbid_unknown_fields=True):
    seed: int = 0
    """Base seed: per-request seeds, bootstrap and splits derive from it."""
    store: str = "data/store"
    models_dir: str = "data/models"
    reports: str = "reports"


class ModelEntry(_Strict, frozen=True, forbid_unknown_fields=True):
    """A row of the model table (see ``gvstore.models.ModelSpec`` for each field)."""

    source: Literal["package", "local", "hub"] = "package"
    package: str = ""
    file: str = ""
    path: str = ""
    hub_id: str = ""
    revision: str = ""
    kind: Literal["instruct", "base"] = "instruct"
    family: str = ""
    flops: float | None = None
    round: int = 0


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
    """First N items of the split (None: all)."""
    offset: int = 0
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
    """The rounds' prompts (default: ``tasks.<task>``)."""
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
        return Path(self.dir) / "models" / model

    def train_file(self, model: str) -> Path:
        """The training set of ``model`` (made from its parent's round)."""
        return Path(self.dir) / "train" / f"{model}.jsonl"


class Params(_Strict, frozen=True, forbid_unknown_fields=True):
    study: Study
    base: Base = msgspec.field(default_factory=Base)
    models: dict[str, ModelEntry] = msgspec.field(default_factory=dict)
    tasks: dict[str, TaskEntry] = msgspec.field(default_factory=dict)
    sample: SampleParams = msgspec.field(default_factory=SampleParams)
    verify: VerifyParams = msgspec.field(default_factory=VerifyParams)
    weights: WeightsParams = msgspec.field(default_factory=WeightsParams)
    report: ReportParams = msgspec.field(default_factory=ReportParams)
    rounds: RoundsParams = msgspec.field(default_factory=RoundsParams)

    def model(self, name: str) -> ModelSpec:
        entry = self.models.get(name)
        if entry is None:
            raise GvstoreError(f"model {name!r} is not in the model table (params: models)")
        return ModelSpec(name=name, **msgspec.structs.asdict(entry))

    def task(self, name: str) -> TaskEntry:
        return self.tasks.get(name, TaskEntry())

    def rounds_prompts(self) -> TaskEntry:
        """The prompts the rounds generate for."""
        r = self.rounds
        return r.prompts if r.prompts is not None else self.task(r.task)


def load(path: Path | str = "params.yaml") -> Params:
    """Parse and type-check a params file (no semantic checks: see ``validate``)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise GvstoreError(f"cannot read {p}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise GvstoreError(f"{p} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict):
        raise GvstoreError(f"{p}: expected a mapping of sections at the top")
    rounds = raw.get("rounds")
    if not isinstance(rounds, dict) or "start" not in rounds or "steps" not in rounds:
        raise GvstoreError(f"{p}: dvc.yaml needs rounds.start and rounds.steps; add "
                           "`rounds: {start: [], steps: {}}` for a study without rounds "
                           "(docs/rounds.md)")
    # Table entries first, one by one, so that an error names the entry (msgspec's own
    # path would say `$.models[...]`).
    for section, entry_type in (("models", ModelEntry), ("tasks", TaskEntry)):
        table = raw.get(section)
        if isinstance(table, dict):
            for name, value in table.items():
                try:
                    msgspec.convert(value if value is not None else {}, entry_type)
                except msgspec.ValidationError as exc:
                    msg = str(exc).replace("`$", f"`$.{section}.{name}", 1)
                    if "`$" not in str(exc):
                        msg += f" - at `$.{section}.{name}`"
                    raise GvstoreError(f"{p}: {msg}") from exc
    try:
        return msgspec.convert(raw, Params)
    except msgspec.ValidationError as exc:
        raise GvstoreError(f"{p}: {exc}") from exc


def validate(params: Params, *, check_data: bool = True) -> list[str]:
    """Every check that needs more than types; raises on the first problem, returns notes."""
    from gvstore.analysis.specs import SpecError, parse, parse_template
    from gvstore.tasks.registry import list_tasks

    st = params.study
    notes: list[str] = []
    for key, names in (("study.models", st.models), ("study.generators", st.generators),
                       ("study.verifiers", st.verifiers), ("study.tasks", st.tasks),
                       ("study.methods", st.methods)):
        if not names:
            raise GvstoreError(f"{key} is empty")
        if len(set(names)) != len(names):
            raise GvstoreError(f"{key} lists a name twice")
    for name in st.models:
        params.model(name)
    for key, names in (("study.generators", st.generators), ("study.verifiers", st.verifiers)):
        for name in names:
            if name not in st.models:
                raise GvstoreError(f"{key}: {name!r} is not listed in study.models")
    for m in st.methods:
        if m not in METHODS:
            raise GvstoreError(f"study.methods: unknown method {m!r}; "
                               f"choose from {', '.join(METHODS)}")
    for name, row in params.models.items():
        if row.source == "local" and not row.path:
            raise GvstoreError(f"models.{name}: source 'local' needs path")
        if row.source == "hub" and not row.hub_id:
            raise GvstoreError(f"models.{name}: source 'hub' needs hub_id")
        if row.source == "package" and not row.package:
            raise GvstoreError(f"models.{name}: source 'package' needs package")
    s, v = params.sample, params.verify
    checks = [
        (s.n >= 1, f"sample.n must be >= 1, got {s.n}"),
        (s.temperature >= 0, "sample.temperature must be >= 0"),
        (0 < s.top_p <= 1, "sample.top_p must be in (0, 1]"),
        (s.top_k >= 0, "sample.top_k must be >= 0"),
        (s.max_tokens >= 1, "sample.max_tokens must be >= 1"),
        (s.batch_size >= 1, "sample.batch_size must be >= 1"),
        (s.backend in BACKENDS, f"sample.backend must be one of {', '.join(BACKENDS)}"),
        (v.repeats >= 1, "verify.repeats must be >= 1"),
        (v.tournament_rounds >= 1, "verify.tournament_rounds must be >= 1"),
        (v.max_tokens >= 1, "verify.max_tokens must be >= 1"),
        (v.batch_size >= 1, "verify.batch_size must be >= 1"),
        (v.backend in BACKENDS, f"verify.backend must be one of {', '.join(BACKENDS)}"),
        (params.report.resamples >= 0, "report.resamples must be >= 0"),
        (all(k >= 1 for k in params.report.passk), "report.passk values must be >= 1"),
    ]
    for ok, msg in checks:
        if not ok:
            raise GvstoreError(msg)
    for key, specs, parser in (("weights.specs", params.weights.specs, parse),
                               ("report.specs", params.report.specs, parse),
                               ("report.sweeps", params.report.sweeps, parse_template)):
        for text in specs:
            try:
                parser(text)
            except SpecError as exc:
                raise GvstoreError(f"{key}: {' '.join(str(exc).split())}") from None
    known = set(list_tasks())
    if params.rounds.enabled:
        notes += _validate_rounds(params, check_data)
    elif params.rounds.steps:
        raise GvstoreError("rounds.steps needs rounds.start (round 0's model)")
    for name in list(st.tasks) + list(params.tasks):
        if name not in known:
            raise GvstoreError(f"unknown task {name!r}; known tasks: {', '.join(sorted(known))}")
    for name in st.tasks:
        note = _check_entry(f"tasks.{name}", name, params.task(name), check_data)
        if note:
            notes.append(note)
    return notes


_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_entry(where: str, name: str, entry: TaskEntry, check_data: bool) -> str | None:
    """A task's prompt range: known task, sane numbers, and (check_data) items there."""
    from gvstore.tasks.registry import get_task

    if entry.prompts is not None and entry.prompts < 1:
        raise GvstoreError(f"{where}.prompts must be >= 1")
    if entry.offset < 0:
        raise GvstoreError(f"{where}.offset must be >= 0")
    task = get_task(name, entry.data)
    task.check_split(entry.split)
    if not check_data:
        return None
    task.shots(entry.kshot)  # exemplars may live in data files too
    n = len(task.items(entry.split))
    if n <= entry.offset:
        raise GvstoreError(f"{where}: offset {entry.offset} leaves no items of the {n} in "
                           f"{entry.split}")
    return f"task {name}: {n} items in {entry.split}"


def _validate_rounds(params: Params, check_data: bool) -> list[str]:
    """The rounds section: a chain of model names, a verifier, a filter, an update."""
    from gvstore.analysis.specs import SpecError, methods_of, parse
    from gvstore.finetune import build_hparams
    from gvstore.tasks.registry import list_tasks

    r, st = params.rounds, params.study
    if len(r.start) != 1:
        raise GvstoreError(f"rounds.start lists round 0's model, one name (or [] for no "
                           f"rounds); got {len(r.start)}")
    first = r.start[0]
    if first not in st.models:
        raise GvstoreError(f"rounds.start: {first!r} is not listed in study.models (prepare-model "
                           "must prepare it)")
    chain = r.chain()
    if len(set(chain)) != len(chain):
        raise GvstoreError("rounds: a model name appears twice in rounds.start and rounds.steps")
    parent = first
    for i, (model, source) in enumerate(r.steps.items(), 1):
        if not _FOLDER_NAME.fullmatch(model):
            raise GvstoreError(f"rounds.steps: {model!r} is not a usable folder name (letters, "
                               "digits, '.', '_', '-')")
        if model in params.models:
            raise GvstoreError(f"rounds.steps: {model!r} is already in the model table; name "
                               "the trained model something new")
        if source != parent:
            raise GvstoreError(f"rounds.steps: round {i} ({model}) must start from round "
                               f"{i - 1}'s model {parent!r}, not {source!r}")
        parent = model
    if r.verifier not in (SELF, GROUND_TRUTH) and r.verifier not in st.models:
        raise GvstoreError(f"rounds.verifier: {r.verifier!r} is not '{SELF}', "
                           f"'{GROUND_TRUTH}' or a model listed in study.models")
    try:
        spec = parse(r.filter)
    except SpecError as exc:
        raise GvstoreError(f"rounds.filter: {' '.join(str(exc).split())}") from None
    for m in methods_of(spec):
        if m not in METHODS:
            raise GvstoreError(f"rounds.filter: {m!r} is not a verification method")
    if r.task not in set(list_tasks()):
        raise GvstoreError(f"rounds.task: unknown task {r.task!r}; known tasks: "
                           f"{', '.join(sorted(list_tasks()))}")
    if r.threads is not None and r.threads < 1:
        raise GvstoreError("rounds.threads must be >= 1")
    for cuda in (False, True) if r.preset == "auto" else (None,):
        hp = build_hparams(r.preset, None, cuda=bool(cuda), where="rounds.hyperparameters",
                           **_hp_overrides(r.hyperparameters))
    note = _check_entry("rounds.prompts" if r.prompts is not None else f"tasks.{r.task}",
                        r.task, params.rounds_prompts(), check_data)
    if r.prompts is None and r.task in st.tasks:
        note = None  # the study's own check says it
    notes = [f"rounds: {len(chain) - 1} rounds from {first} on {r.task}, {r.update} on "
             f"{'the ground truth' if r.verifier == GROUND_TRUTH else r.filter} "
             f"({r.verifier} verifier), {hp.steps} steps of {hp.batch_size} per round"
             + (" on a CUDA machine" if r.preset == "auto" else "")]
    return notes + ([note] if note else [])


def _hp_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """``rounds.hyperparameters``, checked field by field against the training settings."""
    from gvstore.finetune import Hyperparams

    known = set(Hyperparams.__struct_fields__)
    for key in values:
        if key not in known:
            raise GvstoreError(f"rounds.hyperparameters: unknown setting {key!r}; known: "
                               f"{', '.join(sorted(known))}")
    return dict(values)
