from __future__ import annotations

import os
from pathlib import Path

import pytest

import gvstore.backends  # noqa: F401  # OpenMP's passive wait policy, before any torch import

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "shared_data(*paths): the files under the shared task data that the "
        "shared_data fixture needs (skips without them)")


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own default store root and no progress bars."""
    root = tmp_path / "store"
    monkeypatch.setenv("GVSTORE_STORE", str(root))
    monkeypatch.setenv("GVSTORE_NO_PROGRESS", "1")
    return root


@pytest.fixture
def shared_data(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared task data ($GVSTORE_DATA, else ../shared/data beside the repository), set
    as GVSTORE_DATA. Skips when it is missing, or lacks a path named by the test's (or its
    module's) ``@pytest.mark.shared_data("gsm8k/test.jsonl", ...)``."""
    from helpers import SHARED_DATA  # here: the conftest itself imports nothing heavy

    root = Path(os.environ.get("GVSTORE_DATA") or SHARED_DATA)
    marker = request.node.get_closest_marker("shared_data")
    for path in (".", *(marker.args if marker else ())):
        if not (root / path).exists():
            pytest.skip(f"task data not found at {root / path} "
                        "(expected ../shared/data beside the repo, or $GVSTORE_DATA)")
    monkeypatch.setenv("GVSTORE_DATA", str(root))
    return root


@pytest.fixture(scope="session")
def prepared_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding the embedded default model, converted once per test session."""
    pytest.importorskip("transformers")
    from gvstore.models import SMOLLM2, prepare

    d = tmp_path_factory.mktemp("models")
    out, converted = prepare(SMOLLM2, d)  # the real GGUF from the package
    assert converted and out == d / SMOLLM2.name
    return d
