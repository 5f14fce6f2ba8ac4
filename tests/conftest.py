from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own default store root and no progress bars."""
    root = tmp_path / "store"
    monkeypatch.setenv("GVSTORE_STORE", str(root))
    monkeypatch.setenv("GVSTORE_NO_PROGRESS", "1")
    return root
