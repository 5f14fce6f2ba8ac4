"""The back-end registry (``gvstore.backends``) is the one list of back ends."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gvstore import params
from gvstore.backends import available, get_backend
from gvstore.errors import GvstoreError
from gvstore.models import ModelSpec

REPO = Path(__file__).resolve().parents[1]


def test_params_accepts_exactly_the_registered_back_ends() -> None:
    assert available() == ["ctranslate2", "ctranslate2-float32", "openai", "transformers",
                           "vllm"]
    base = params.load(REPO / "params.yaml")
    for name in available():
        p = msgspec.structs.replace(base, sample=msgspec.structs.replace(base.sample,
                                                                         backend=name))
        params.validate(p, check_data=False)
    bad = msgspec.structs.replace(base, verify=msgspec.structs.replace(base.verify,
                                                                       backend="nope"))
    with pytest.raises(GvstoreError, match="^verify.backend must be one of transformers, "
                       "vllm, openai, ctranslate2, ctranslate2-float32$"):
        params.validate(bad, check_data=False)


def test_an_unknown_back_end_names_the_registered_ones() -> None:
    spec = ModelSpec(name="fake", source="hub", hub_id="fake/fake", kind="instruct")
    with pytest.raises(GvstoreError, match="unknown back end 'nope'; choose from "
                       "ctranslate2, ctranslate2-float32, openai, transformers, vllm"):
        get_backend("nope", spec)
