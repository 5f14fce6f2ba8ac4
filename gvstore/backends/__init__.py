"""Model back ends, registered by name and imported lazily (``import gvstore`` stays light)."""

from gvstore.backends.base import (
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
