"""Model back ends, registered by name and imported lazily (``import gvstore`` stays light).

Importing this package puts OpenMP's passive wait policy in the environment (see
``gvstore.backends.threads``), before any back end imports torch."""

from gvstore.backends.threads import set_wait_policy

set_wait_policy()

from gvstore.backends.base import (  # noqa: E402
    Backend,
    LoglikRequest,
    Sample,
    SampleRequest,
    available,
    get_backend,
)

__all__ = [
    "Backend", "LoglikRequest", "Sample", "SampleRequest", "available", "get_backend",
]
