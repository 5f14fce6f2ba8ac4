"""``--runner`` and its Ray options, shared by ``gvstore generate`` and ``gvstore verify``."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gvstore.params import RunnerParams


class RunnerKind(StrEnum):
    local = "local"
    ray = "ray"


RunnerOpt = Annotated[RunnerKind, typer.Option(
    "--runner", help="Where the model calls run: local (this process) or ray (an actor pool "
    "on a Ray cluster, or a local Ray instance; needs the ray extra; docs/scale.md). The "
    "records are written here either way.", case_sensitive=False)]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="With --runner ray: the cluster to attach to (default: "
    "$RAY_ADDRESS, else a local Ray instance).", show_default=False)]
RayActorsOpt = Annotated[int | None, typer.Option(
    "--ray-actors", min=1, help="With --runner ray: actors in the pool, each loading the model "
    "once (default: as many as the CPUs, or GPUs, hold).", show_default=False)]
RayGpusOpt = Annotated[float, typer.Option(
    "--ray-gpus", min=0.0, help="With --runner ray: GPUs per actor (the vllm back end wants "
    "1).")]


def runner_params(kind: RunnerKind, address: str | None, actors: int | None,
                  gpus: float) -> RunnerParams | None:
    """The runner the options name (None: the local runner)."""
    from gvstore.errors import GvstoreError
    from gvstore.params import RunnerParams

    if kind is RunnerKind.local:
        if address is not None or actors is not None or gpus:
            raise GvstoreError("--ray-address, --ray-actors and --ray-gpus need --runner ray")
        return None
    return RunnerParams(kind="ray", address=address, actors=actors, num_gpus=gpus)
