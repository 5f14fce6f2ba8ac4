"""The checks of a params file beyond its types (``gvstore.params`` runs them).

``load`` runs ``check_names`` (names that become paths) and ``check_bounds`` (every number
within a bound no real study needs); ``validate`` runs those again and the semantic checks
below: the study lists, filter specs, the rounds section and the tasks' prompt ranges. Each
problem is a one-line ``GvstoreError`` naming the key path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gvstore.errors import GvstoreError
from gvstore.names import check_name
from gvstore.verifiers.registry import is_method, method_names

if TYPE_CHECKING:
    from gvstore.params import Params, TaskEntry

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
    ("runner.actors", 1, 1_000_000),
    ("runner.num_cpus", 0.001, 4_096),
    ("runner.num_gpus", 0, 4_096),
    ("runner.retries", 0, 100),
    ("runner.local_cpus", 1, 4_096),
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
    if params.rounds.heldout is not None:
        tables.append(("rounds.heldout", params.rounds.heldout))
    for where, entry in tables:
        for field, lo, hi in TABLE_BOUNDS:
            _number(f"{where}.{field}", getattr(entry, field), lo, hi)
    for name, row in params.models.items():
        for field, lo, hi in MODEL_BOUNDS:
            _number(f"models.{name}.{field}", getattr(row, field), lo, hi)
    if len(params.rounds.folders or ()) > MAX_ROUNDS + 1:
        raise GvstoreError(f"rounds.folders lists {len(params.rounds.folders or ())} models, over "
                           f"the bound of {MAX_ROUNDS + 1} - at `$.rounds.folders`")
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


def check_study(params: Params) -> None:
    """The study lists (non-empty, no name twice, models in the table, generators and
    verifiers among the models, known methods) and each model row's source."""
    st = params.study
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
        if not is_method(m):
            raise GvstoreError(f"study.methods: unknown method {m!r}; "
                               f"choose from {', '.join(method_names())}")
    for name, row in params.models.items():
        if row.name != name:  # a Params built in code: load() names each row by its key
            raise GvstoreError(f"models.{name}: the row is named {row.name!r}, not its key")
        if row.source == "local" and not row.path:
            raise GvstoreError(f"models.{name}: source 'local' needs path")
        if row.source == "hub" and not row.hub_id:
            raise GvstoreError(f"models.{name}: source 'hub' needs hub_id")
        if row.source == "package" and not row.package:
            raise GvstoreError(f"models.{name}: source 'package' needs package")


def check_specs(params: Params) -> None:
    """Every filter spec (weights.specs, report.specs) and sweep template (report.sweeps)."""
    from gvstore.analysis.specs import SpecError, parse, parse_template

    for key, specs, parser in (("weights.specs", params.weights.specs, parse),
                               ("report.specs", params.report.specs, parse),
                               ("report.sweeps", params.report.sweeps, parse_template)):
        for text in specs:
            try:
                parser(text)
            except SpecError as exc:
                raise GvstoreError(f"{key}: {' '.join(str(exc).split())}") from None


def check_entry(where: str, name: str, entry: TaskEntry, check_data: bool) -> str | None:
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
    if entry.select == "stratified":  # a draw past the end is refused (any seed: same range)
        from gvstore.tasks.select import entry_items
        try:
            entry_items(task, entry, 0)
        except GvstoreError as exc:
            raise GvstoreError(f"{where}: {exc}") from None
    return f"task {name}: {n} items in {entry.split}"


def check_tasks(params: Params, check_data: bool) -> list[str]:
    """Known tasks (study.tasks and the task table) and each study task's prompt range."""
    from gvstore.tasks.registry import list_tasks

    st = params.study
    notes: list[str] = []
    known = set(list_tasks())
    for name in list(st.tasks) + list(params.tasks):
        if name not in known:
            raise GvstoreError(f"unknown task {name!r}; known tasks: {', '.join(sorted(known))}")
    for name in st.tasks:
        note = check_entry(f"tasks.{name}", name, params.task(name), check_data)
        if note:
            notes.append(note)
    return notes


def _check_chain(params: Params) -> None:
    """rounds.start and rounds.steps: one chain of new model names, each from the one before."""
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


def check_rounds(params: Params, check_data: bool) -> list[str]:
    """The rounds section: a chain of model names, a verifier, a filter, an update."""
    from gvstore.analysis.specs import SpecError, methods_of, parse
    from gvstore.params import GROUND_TRUTH, SELF
    from gvstore.steps.finetune.config import build_hparams
    from gvstore.tasks.registry import list_tasks

    r, st = params.rounds, params.study
    _check_chain(params)
    chain, first = r.chain(), r.start[0]
    if r.verifier not in (SELF, GROUND_TRUTH) and r.verifier not in st.models:
        raise GvstoreError(f"rounds.verifier: {r.verifier!r} is not '{SELF}', "
                           f"'{GROUND_TRUTH}' or a model listed in study.models")
    try:
        spec = parse(r.filter)
    except SpecError as exc:
        raise GvstoreError(f"rounds.filter: {' '.join(str(exc).split())}") from None
    for m in methods_of(spec):
        if not is_method(m):
            raise GvstoreError(f"rounds.filter: {m!r} is not a verification method")
    if r.task not in set(list_tasks()):
        raise GvstoreError(f"rounds.task: unknown task {r.task!r}; known tasks: "
                           f"{', '.join(sorted(list_tasks()))}")
    for cuda in (False, True) if r.preset == "auto" else (None,):
        hp = build_hparams(r.preset, None, cuda=bool(cuda), where="rounds.hyperparameters",
                           **hp_overrides(r.hyperparameters))
    note = check_entry(_train_key(params), r.task, params.rounds_prompts(), check_data)
    if r.prompts is None and r.task in st.tasks:
        note = None  # the study's own check says it
    held = _check_heldout(params, check_data)
    notes = [f"rounds: {len(chain) - 1} rounds from {first} on {r.task}, {r.update} on "
             f"{'the ground truth' if r.verifier == GROUND_TRUTH else r.filter} "
             f"({r.verifier} verifier), {hp.steps} steps of {hp.batch_size} per round"
             + (" on a CUDA machine" if r.preset == "auto" else "")]
    return notes + [n for n in (note, held) if n]


def _train_key(params: Params) -> str:
    """Where the rounds' training prompts are set."""
    return "rounds.prompts" if params.rounds.prompts is not None else f"tasks.{params.rounds.task}"


def check_disjoint(params: Params, train: tuple[str, list[str]],
                   heldout: tuple[str, list[str]]) -> None:
    """The held-out prompts (split, item ids) share no item of the same split with the training
    prompts (else a one-line error naming how many)."""
    (tsplit, titems), (hsplit, hitems) = train, heldout
    both = sorted(set(titems) & set(hitems)) if tsplit == hsplit else []
    if both:
        raise GvstoreError(
            f"rounds.heldout: {len(both)} of its {len(hitems)} prompts are training prompts "
            f"too ({_train_key(params)}, split {hsplit}; first {both[0]!r}); held-out prompts "
            "must be disjoint: another offset or split - at `$.rounds.heldout`")


def _check_heldout(params: Params, check_data: bool) -> str | None:
    """``rounds.heldout``: a prompt range of the rounds' task, disjoint (check_data) from the
    training prompts."""
    from gvstore.tasks.registry import get_task
    from gvstore.tasks.select import entry_items

    r = params.rounds
    if r.heldout is None:
        return None
    check_entry("rounds.heldout", r.task, r.heldout, check_data)
    if not check_data:
        return None
    sets = []
    for where, entry in ((_train_key(params), params.rounds_prompts()), ("rounds.heldout",
                                                                          r.heldout)):
        try:
            items = entry_items(get_task(r.task, entry.data), entry, params.base.seed)
        except GvstoreError as exc:
            raise GvstoreError(f"{where}: {exc}") from None
        sets.append((entry.split, [it.item_id for it in items]))
    check_disjoint(params, sets[0], sets[1])
    return (f"rounds: {len(sets[1][1])} held-out prompts of {r.task}/{r.heldout.split} beside "
            f"{len(sets[0][1])} training prompts")


def check_round_folders(params: Params) -> list[str]:
    """``rounds.folders`` equals what ``start`` and ``steps`` imply (a note if not written)."""
    want = params.round_folders()
    flow = "{" + ", ".join(f"{m}: {f}" for m, f in want.items()) + "}"
    got = params.rounds.folders
    if got is None:
        return [f"rounds.folders is not written; dvc.yaml needs it: `folders: {flow}`"]
    if list(got) != list(want) or any(Path(got[m]) != Path(f) for m, f in want.items()):
        raise GvstoreError(f"rounds.folders must list rounds.start and rounds.steps in round "
                           f"order with their folders (dvc.yaml loops over it): `folders: "
                           f"{flow}` - at `$.rounds.folders`")
    return []


def hp_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """``rounds.hyperparameters``, checked field by field against the training settings."""
    from gvstore.steps.finetune.config import Hyperparams

    known = set(Hyperparams.__struct_fields__)
    for key in values:
        if key not in known:
            raise GvstoreError(f"rounds.hyperparameters: unknown setting {key!r}; known: "
                               f"{', '.join(sorted(known))}")
    return dict(values)
