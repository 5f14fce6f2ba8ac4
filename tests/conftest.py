from __future__ import annotations

from pathlib import Path

import pytest

import gvstore.backends  # noqa: F401  # OpenMP's passive wait policy, before any torch import

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own default store root and no progress bars."""
    root = tmp_path / "store"
    monkeypatch.setenv("GVSTORE_STORE", str(root))
    monkeypatch.setenv("GVSTORE_NO_PROGRESS", "1")
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
