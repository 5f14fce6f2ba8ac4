"""``params.yaml``, parsed into typed structs before any model loads.

A typo or a wrong type is a one-line error naming the key path (``at $.sample.n``); the
checks that need more than types (a method that does not exist, a filter spec that does not
parse, a model named in the study but missing from the model table, a task whose data file
is missing) follow in ``validate``. ``gvstore params validate [FILE]`` runs all of them
without touching a model.
"""

from __future__ import annotations

import codecs
import math
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from gvstore.errors import GvstoreError
from gvstore.models import ModelSpec
from gvstore.names import check_name, child
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
        return child(Path(self.dir) / "models", model, "round model name")

    def train_file(self, model: str) -> Path:
        """The training set of ``model`` (made from its parent's round)."""
        return child(Path(self.dir) / "train", f"{check_name(model, 'round model name')}.jsonl",
                     "training file name")


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


MAX_BYTES = 1 << 20
"""The largest params (or hyperparameter config) file: 1 MiB."""
MAX_DEPTH = 32
"""The deepest nesting of mappings and lists in a params file (params.yaml needs 4)."""


class _BadYAML(yaml.YAMLError):
    """A YAML document that parses but that a params file may not be (one line, no mark)."""


def _key_path(parent: str, key: object) -> str:
    return f"{parent}.{key}" if isinstance(key, str) else f"{parent}[{key!r}]"


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys (instead of the last one silently
    winning), aliases (a few lines of ``*a`` can expand to billions of nodes) and nesting
    deeper than ``MAX_DEPTH`` (instead of running into Python's recursion limit); each
    refusal names the key path and line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._stack: list[str] = []
        self._paths: dict[int, str] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if parent is None or not self._stack:
            path = "$"
        elif isinstance(index, yaml.ScalarNode):
            path = _key_path(self._stack[-1], index.value)
        elif isinstance(index, int):
            path = f"{self._stack[-1]}[{index}]"
        else:  # a mapping key
            path = self._stack[-1]
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else 0
        if self.check_event(yaml.AliasEvent):
            raise _BadYAML(f"an alias (*name) at `{path}` (line {line}); params files spell "
                           "every value out")
        if len(self._stack) >= MAX_DEPTH:
            raise _BadYAML(f"nested deeper than {MAX_DEPTH} levels at `{path}` (line {line})")
        self._stack.append(path)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._stack.pop()
        self._paths[id(node)] = path
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[type, Any], int] = {}
        where = self._paths.get(id(node), "$")
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                ident = (type(key), key)
                hash(ident)
            except TypeError:
                continue  # the base class names an unhashable key
            line = key_node.start_mark.line + 1
            if ident in seen:
                raise _BadYAML(f"duplicate key {key!r} at `{_key_path(where, key)}` (line "
                               f"{line}; first given at line {seen[ident]})")
            seen[ident] = line
        return super().construct_mapping(node, deep=deep)


def _decode(p: Path, data: bytes) -> str:
    """The text of a params file, which must be UTF-8 (a leading byte-order mark is dropped)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
            len(data) >= 2 and b"\0" in data[:2]):
        raise GvstoreError(f"{p} is UTF-16 or UTF-32 text (a byte-order mark or NUL bytes); "
                           "save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GvstoreError(f"{p} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                           f"{exc.start}, line {line}); save it as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_yaml(path: Path | str, what: str = "params file") -> Any:
    """A YAML file read strictly: UTF-8, at most ``MAX_BYTES``, no duplicate keys, no
    aliases, nesting at most ``MAX_DEPTH`` deep. Any problem is a one-line ``GvstoreError``
    naming the file (and the key path and line where there is one)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise GvstoreError(f"cannot read {p}: {exc.strerror}") from exc
    if len(data) > MAX_BYTES:
        raise GvstoreError(f"{p} is over {MAX_BYTES} bytes, the bound for a {what}")
    text = _decode(p, data)
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _BadYAML as exc:
        raise GvstoreError(f"{p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise GvstoreError(f"{p} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:  # the depth limit is meant to come first
        raise GvstoreError(f"{p}: nested too deep (at most {MAX_DEPTH} levels)") from None


INT64 = 2**63 - 1

# (key path, lowest, highest): numbers that reach a model, a bootstrap or a folder. The upper
# bounds are far beyond any real study; a value past one is a typo or an attack, and is refused
# before it can allocate, loop or overflow.
BOUNDS: tuple[tuple[str, float, float], ...] = (
    ("base.seed", 0, INT64),
    ("sample.n", 1, 100_000),
    ("sample.temperature", 0, 10),
    ("sample.top_p", 0, 1),
    ("sample.top_k", 0, 1_000_000),
    ("sample.max_tokens", 1, 1_000_000),
    ("sample.batch_size", 1, 100_000),
    ("verify.repeats", 1, 1_000),
    ("verify.tournament_rounds", 1, 20),
    ("verify.max_tokens", 1, 1_000_000),
    ("verify.temperature", 0, 10),
    ("verify.batch_size", 1, 100_000),
    ("report.resamples", 0, 100_000),
    ("rounds.threads", 1, 4_096),
)
TABLE_BOUNDS: tuple[tuple[str, float, float], ...] = (
    ("prompts", 1, 100_000_000),
    ("offset", 0, 100_000_000),
    ("kshot", 0, 1_000),
)
MODEL_BOUNDS: tuple[tuple[str, float, float], ...] = (
    ("flops", 0, 1e32),
    ("round", 0, 1_000),
)
MAX_PASSK = 100_000
MAX_ROUNDS = 100
"""The most trained rounds (``rounds.steps``)."""


def _number(key: str, value: Any, lo: float, hi: float, *, open_lo: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise GvstoreError(f"{key} must be a finite number, got {value} - at `$.{key}`")
    if value < lo or (open_lo and value == lo):
        raise GvstoreError(f"{key} must be {'>' if open_lo else '>='} {lo:g}, got {value:g} - "
                           f"at `$.{key}`")
    if value > hi:
        raise GvstoreError(f"{key} must be <= {hi:g} (a bound no real study needs), got "
                           f"{value:.6g} - at `$.{key}`")


def check_bounds(params: Params) -> None:
    """Every number of ``params`` within its bound (``BOUNDS``), finite, else a one-line
    error naming the key path and the bound."""
    for key, lo, hi in BOUNDS:
        section, field = key.split(".")
        _number(key, getattr(getattr(params, section), field), lo, hi,
                open_lo=key == "sample.top_p")
    for i, k in enumerate(params.report.passk):
        _number(f"report.passk[{i}]", k, 1, MAX_PASSK)
    tables: list[tuple[str, TaskEntry]] = [(f"tasks.{n}", e) for n, e in params.tasks.items()]
    if params.rounds.prompts is not None:
        tables.append(("rounds.prompts", params.rounds.prompts))
    for where, entry in tables:
        for field, lo, hi in TABLE_BOUNDS:
            _number(f"{where}.{field}", getattr(entry, field), lo, hi)
    for name, row in params.models.items():
        for field, lo, hi in MODEL_BOUNDS:
            _number(f"models.{name}.{field}", getattr(row, field), lo, hi)
    if len(params.rounds.steps) > MAX_ROUNDS:
        raise GvstoreError(f"rounds.steps lists {len(params.rounds.steps)} rounds, over the "
                           f"bound of {MAX_ROUNDS} - at `$.rounds.steps`")


def check_names(params: Params) -> None:
    """Every name of ``params`` that becomes a path component obeys ``gvstore.names``' rule:
    model, task and method names, round models (a one-line error naming the key path)."""
    st, r = params.study, params.rounds
    for name in params.models:
        check_name(name, "model name", "at `$.models`")
    for name in params.tasks:
        check_name(name, "task name", "at `$.tasks`")
    lists: tuple[tuple[str, str, list[str]], ...] = (
        ("study.models", "model name", st.models),
        ("study.generators", "model name", st.generators),
        ("study.verifiers", "model name", st.verifiers),
        ("study.tasks", "task name", st.tasks),
        ("study.methods", "method name", st.methods),
        ("rounds.start", "model name", r.start),
        ("rounds.steps", "round model name", list(r.steps)),
    )
    for key, what, names in lists:
        for i, name in enumerate(names):
            check_name(name, what, f"at `$.{key}[{i}]`" if key != "rounds.steps" else
                       f"at `$.{key}`")
    for new, source in r.steps.items():
        check_name(source, "model name", f"at `$.rounds.steps.{new}`")
    check_name(r.task, "task name", "at `$.rounds.task`")
    check_name(r.verifier, "model name", "at `$.rounds.verifier`")


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
        params = msgspec.convert(raw, Params)
    except msgspec.ValidationError as exc:
        raise GvstoreError(f"{p}: {exc}") from exc
    try:
        check_names(params)
        check_bounds(params)
    except GvstoreError as exc:
        raise GvstoreError(f"{p}: {exc}") from None
    return params


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
    check_names(params)  # again: a Params may be built without load()
    check_bounds(params)
    s, v = params.sample, params.verify
    checks = [
        (s.backend in BACKENDS, f"sample.backend must be one of {', '.join(BACKENDS)}"),
        (v.backend in BACKENDS, f"verify.backend must be one of {', '.join(BACKENDS)}"),
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


def _check_entry(where: str, name: str, entry: TaskEntry, check_data: bool) -> str | None:
    """A task's prompt range: known task, sane numbers, and (check_data) items there."""
    from gvstore.tasks.registry import get_task

    for field, lo, hi in TABLE_BOUNDS:
        _number(f"{where}.{field}", getattr(entry, field), lo, hi)
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
        check_name(model, "round model name", "at `$.rounds.steps`")
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
