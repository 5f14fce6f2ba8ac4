"""The back-end registry (``gvstore.backends``) is the one list of back ends."""

from __future__ import annotations

import pytest

from gvstore import params
from gvstore.backends import available, get_backend
from gvstore.errors import GvstoreError
from gvstore.models import ModelSpec


def test_params_accepts_exactly_the_registered_back_ends() -> None:
    assert sorted(params.BACKENDS) == available() == ["openai", "transformers", "vllm"]


def test_an_unknown_back_end_names_the_registered_ones() -> None:
    spec = ModelSpec(name="fake", source="hub", hub_id="fake/fake", kind="instruct")
    with pytest.raises(GvstoreError, match="unknown back end 'nope'; choose from openai, "
                       "transformers, vllm"):
        get_backend("nope", spec)
