"""The steps of iterative self-improvement, as the round stages of ``dvc.yaml`` run them.

Round 0's model is ``rounds.start`` (a model of the table); round r's model is the ``finetune``
output of round r-1's model, trained on round r-1's samples that the filter kept. Every step
takes a model name of the chain and writes its own store folder::

    rounds/<model>/generate/<task>   the round's samples (records carry the round number)
    rounds/<model>/grade/<task>      their ground-truth grades
    rounds/<model>/verify/<method>   the round's verifier on them (self: the round's model)

and, for a trained model, ``<rounds.dir>/train/<model>.jsonl`` (the training set made from
its parent's round) and ``<rounds.dir>/models/<model>`` (the weights). Every step is
idempotent: the store says what is missing, and a model folder whose manifest records the same
parent, data and settings is not trained again. Round 0 shares its records with the main study
where the prompts and settings are the same (same keys), so it costs nothing there.

Two prompt sets of the one task: the training prompts (``prompt_set``: ``rounds.prompts``, else
``tasks.<task>``) and, if ``rounds.heldout`` is set, the held-out prompts (``heldout_set``,
disjoint from them). Every round generates, grades and verifies both (the same stages and
folders), the training set of the next round comes from the training prompts alone, and the
report measures each round on both, apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gvstore.errors import GvstoreError
from gvstore.params import GROUND_TRUTH, SELF, Params
from gvstore.records import seal

if TYPE_CHECKING:
    from gvstore.analysis.export import ExportReport
    from gvstore.analysis.rounds import RoundRef, RoundsReport
    from gvstore.analysis.specs import Spec
    from gvstore.models import ModelSpec
    from gvstore.params import TaskEntry
    from gvstore.steps.base import Progress
    from gvstore.steps.finetune.config import Hyperparams
    from gvstore.steps.finetune.step import FinetuneResult
    from gvstore.steps.generate import GenerateSummary
    from gvstore.steps.grade import GradeSummary
    from gvstore.steps.verify import VerifySummary
    from gvstore.store import Store


def folder(model: str, step: str) -> str:
    """The store folder of one round step (``generate``, ``grade`` or ``verify``)."""
    from gvstore.names import check_name

    return f"rounds/{check_name(model, 'round model name')}/{step}"


def round_model(params: Params, name: str) -> ModelSpec:
    """A model of the rounds or a fixed verifier: from the model table, or a trained round's
    folder (which must exist: its finetune stage makes it)."""
    from gvstore.models import spec_from_folder

    r = params.rounds
    if name in params.models:
        return params.model(name)
    if name not in r.steps:
        raise GvstoreError(f"{name!r} is neither in the model table nor a model of the rounds")
    path = r.model_dir(name)
    if not path.is_dir():
        raise GvstoreError(f"round model {name!r} has no folder {path}; its finetune stage "
                           "makes it (dvc repro)")
    spec = spec_from_folder(path)
    want = r.round_of(name)
    if spec.name != name or spec.round != want:
        raise GvstoreError(f"{path} holds {spec.name!r} of round {spec.round}, not {name!r} of "
                           f"round {want}; remove the folder and run its finetune stage again")
    return spec


def verifier_name(params: Params, model: str) -> str | None:
    """Whose verifications filter ``model``'s round (None: the ground truth)."""
    v = params.rounds.verifier
    if v == GROUND_TRUTH:
        return None
    return model if v == SELF else v


def filter_spec(params: Params) -> Spec | None:
    """The rounds' filter spec; None for the ground truth as verifier."""
    from gvstore.analysis.specs import parse

    return None if params.rounds.verifier == GROUND_TRUTH else parse(params.rounds.filter)


@dataclass(frozen=True)
class PromptSet:
    """A set of the rounds' prompts: item ids (in the task's order) and prompt record ids."""

    split: str
    items: list[str]
    prompt_ids: frozenset[str]


def _entry_set(params: Params, entry: TaskEntry) -> PromptSet:
    from gvstore.tasks.registry import get_task
    from gvstore.tasks.select import entry_items

    task = get_task(params.rounds.task, entry.data)
    items = entry_items(task, entry, params.base.seed)  # the generate step's selection
    recs = [seal(task.prompt_record(it, entry.kshot)) for it in items]
    return PromptSet(entry.split, [p.item_id for p in recs], frozenset(p.id for p in recs))


def prompt_set(params: Params) -> PromptSet:
    """The rounds' training prompts (``rounds.prompts``, else ``tasks.<task>``): the training
    sets come from these alone."""
    return _entry_set(params, params.rounds_prompts())


def heldout_set(params: Params) -> PromptSet | None:
    """The rounds' held-out prompts (``rounds.heldout``; None: none), checked disjoint from the
    training prompts (no item of the same split in both)."""
    from gvstore.params_check import check_disjoint

    entry = params.rounds.heldout
    if entry is None:
        return None
    held = _entry_set(params, entry)
    train = prompt_set(params)
    check_disjoint(params, (train.split, train.items), (held.split, held.items))
    return held


def _all_prompts(params: Params) -> frozenset[str]:
    """The prompt record ids every round generates, grades and verifies: training and
    held-out."""
    held = heldout_set(params)
    return prompt_set(params).prompt_ids | (held.prompt_ids if held else frozenset())


def _store(params: Params) -> Store:
    from gvstore.store import Store

    return Store(params.base.store)


def _ensure(store: Store, name: str) -> None:
    """A step's folder exists even when it had nothing to write (a DVC output)."""
    (store.root / name).mkdir(parents=True, exist_ok=True)


def generate(params: Params, model: str, *, progress: Progress | None = None
             ) -> GenerateSummary:
    """Round ``model``'s samples of the rounds' prompts, training then held-out (only the
    missing ones)."""
    from gvstore.steps.generate import generate_task

    r = params.rounds
    store = _store(params)
    out = f"{folder(model, 'generate')}/{r.task}"
    heldout_set(params)  # checked disjoint before any sample
    summary = generate_task(
        store, round_model(params, model), r.task, params.rounds_prompts(), params.sample,
        seed=params.base.seed, round_=r.round_of(model), models_dir=Path(params.base.models_dir),
        folder=out, progress=progress, more=[r.heldout] if r.heldout is not None else [],
        runner=params.runner)
    _ensure(store, out)
    return summary


def grade(params: Params, model: str) -> GradeSummary:
    """Grades of round ``model``'s samples."""
    from gvstore.steps.grade import grade_store

    r = params.rounds
    rnd = r.round_of(model)
    store = _store(params)
    summary = grade_store(store, r.task, folder_prefix=f"{folder(model, 'grade')}/",
                          where=lambda g: g.model == model and g.round == rnd)
    _ensure(store, f"{folder(model, 'grade')}/{r.task}")
    return summary


def verify(params: Params, model: str, *,
           progress: Callable[[str, str], AbstractContextManager[Progress]] | None = None
           ) -> list[VerifySummary]:
    """The rounds' verifier on round ``model``'s samples, for each method of the filter (none
    for the ground truth). ``progress(method, verifier)`` opens each method's progress."""
    from gvstore.analysis.specs import methods_of
    from gvstore.steps.verify import verify_with_params

    r = params.rounds
    store = _store(params)
    _ensure(store, folder(model, "verify"))
    name = verifier_name(params, model)
    spec = filter_spec(params)
    if name is None or spec is None:
        return []
    verifier = round_model(params, name)
    prompt_ids = _all_prompts(params)
    out = []
    for method in methods_of(spec):
        with progress(method, verifier.name) if progress else nullcontext() as bar:
            out.append(verify_with_params(
                params, store, verifier, method, r.task,
                folder=f"{folder(model, 'verify')}/{method}", progress=bar, generator=model,
                round_=r.round_of(model), prompt_ids=prompt_ids))
    return out


def training_set(params: Params, model: str) -> ExportReport:
    """The training set of ``model``: its parent's round on the training prompts alone (never
    the held-out ones), filtered (kept samples for sft, chosen/rejected pairs for rpo). An
    empty set is an error: there is nothing to train on."""
    from gvstore.analysis.export import export_pairs, export_sft
    from gvstore.analysis.frames import Filters
    from gvstore.replay import handle

    r = params.rounds
    parent = r.parent_of(model)
    spec = filter_spec(params)
    verifier = verifier_name(params, parent)
    prompts = prompt_set(params)
    filters = Filters(tasks=(r.task,), generators=(parent,),
                      verifiers=(verifier,) if verifier else (),
                      rounds=(r.round_of(parent),),
                      prompts=tuple(sorted(handle(p) for p in prompts.prompt_ids)))
    export = export_sft if r.update == "sft" else export_pairs
    out = r.train_file(model)
    try:
        rep = export(_store(params), spec, out, filters=filters)
    except GvstoreError as exc:
        raise GvstoreError(f"training set of {model} (round {r.round_of(parent)} of {parent}): "
                           f"{exc}") from None
    if rep.lines == 0:
        out.unlink(missing_ok=True)
        what = "kept no sample" if r.update == "sft" else "gave no (chosen, rejected) pair"
        raise GvstoreError(f"the filter {rep.spec} {what} of round {r.round_of(parent)} "
                           f"({parent}, {rep.skipped_prompts} prompts): nothing to train "
                           f"{model} on")
    return rep


def hparams(params: Params, cuda: bool | None = None) -> Hyperparams:
    """The rounds' training settings: the preset, ``rounds.hyperparameters`` over it, and the
    study's seed unless the hyperparameters name one."""
    from gvstore.steps.finetune.config import build_hparams

    r = params.rounds
    values: dict[str, Any] = {"seed": params.base.seed, **r.hyperparameters}
    return build_hparams(r.preset, None, cuda=cuda, where="rounds.hyperparameters", **values)


def finetune(params: Params, model: str, *, verbose: bool = False) -> FinetuneResult:
    """Train ``model`` from its parent on its training set (or find it up to date)."""
    from gvstore.steps.finetune.step import finetune as run

    r = params.rounds
    parent = round_model(params, r.parent_of(model))
    return run(r.update, r.train_file(model), parent, r.model_dir(model), hparams=hparams(params),
               name=model, models_dir=Path(params.base.models_dir), verbose=verbose,
               threads=r.threads)


def chain(params: Params) -> list[RoundRef]:
    """The rounds as the report reads them: (round, model, whose verifications)."""
    from gvstore.analysis.rounds import RoundRef

    return [RoundRef(i, m, verifier_name(params, m))
            for i, m in enumerate(params.rounds.chain())]


def report(params: Params, store: Store | None = None, *,
           items: Collection[str] | None = None, ks: Sequence[int] | None = None,
           utility: str | None = None, resamples: int | None = None, seed: int | None = None,
           grader: str | None = None) -> RoundsReport:
    """The round report of a params file's rounds: on the training prompts (``items``: these
    instead), and with ``rounds.heldout`` the same figures on the held-out prompts beside them
    (``RoundsReport.heldout``). ``ks``, ``utility``, ``resamples``, ``seed`` and ``grader``
    override the report section and base.seed (None: the params')."""
    from gvstore.analysis.rounds import round_report
    from gvstore.replay import Projections

    if not params.rounds.enabled:
        raise GvstoreError("no rounds in the params file (rounds.start is empty)")
    rp = params.report
    proj = Projections(store or _store(params))
    train, held = prompt_set(params), heldout_set(params)

    def on(prompts: PromptSet, chosen: Collection[str]) -> RoundsReport:
        return round_report(
            proj, params.rounds.task, chain(params), spec=filter_spec(params),
            ks=ks or rp.passk, utility=utility or rp.utility,
            resamples=rp.resamples if resamples is None else resamples,
            seed=params.base.seed if seed is None else seed, grader=grader, items=chosen,
            split=prompts.split)

    out = on(train, items if items is not None else train.items)
    if held is None:
        return out
    try:
        return out.with_heldout(on(held, held.items))
    except GvstoreError as exc:
        raise GvstoreError(f"held-out prompts (rounds.heldout): {exc}") from None
