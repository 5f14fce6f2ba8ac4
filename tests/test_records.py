"""Records: golden ids, round-trips, and which fields the digests cover."""

from __future__ import annotations

import hashlib
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gvstore.digest import canonical_json, digest, seed
from gvstore.records import (
    META_FIELDS,
    RECORD_TYPES,
    Comparison,
    Generation,
    Grade,
    Prompt,
    Provenance,
    Sampling,
    Verification,
    Weight,
    check,
    decoder,
    encoder,
    record_id,
    record_key,
    seal,
)

PROMPT = Prompt(task="gsm8k", item_id="17", kshot=4, text="Q: 2+2?\nA:", reference="4")
GEN = Generation(
    prompt_id="sha256:" + "ab" * 32, task="gsm8k", model="smollm2-135m-instruct",
    backend="transformers", sampling=Sampling(temperature=0.7, top_p=0.9, max_tokens=128),
    sample_index=3, seed=12345, text="2+2 is 4. The answer is 4.", n_tokens=11,
    finish_reason="stop",
)
GRADE = Grade(generation_id="sha256:" + "cd" * 32, grader="gsm8k", strict=1.0, flexible=1.0,
              extracted="4")
VER = Verification(
    generation_id="sha256:" + "cd" * 32, verifier="smollm2-135m-instruct", method="mc",
    template="sha256:" + "01" * 32, raw=" Correct", score=0.75, p_correct=0.6, p_incorrect=0.2,
)
CMP = Comparison(prompt_id="sha256:" + "ab" * 32, generation_a="sha256:" + "cd" * 32,
                 generation_b="sha256:" + "ef" * 32, verifier="v", bracket=1, bracket_round=2,
                 raw="A", winner="sha256:" + "cd" * 32)
WEIGHT = Weight(generation_id="sha256:" + "cd" * 32, spec="mc:quantile=0.8",
                inputs=("sha256:" + "99" * 32,), weight=1.0)

# Pinned: if one of these moves, the canonical encoding changed. That is a schema bump
# (records.SCHEMA and a new digest rule), never an accident.
GOLDEN = [
    (PROMPT, "sha256:e694d4cc9d81896c1aa415e7e776702ac242c708a053fcfd67cb5bb0be6c4d95",
     "sha256:4efb2e06753d98e61d767d2d941ec69b113d3d00ea9b56a989084ff2d6baa158"),
    (GEN, "sha256:1ef682301d810d5ca1586021903e0a9528e4104bfa72e74825de8de846c95c1a",
     "sha256:e0c1e892826240f795b1d65826df36172006b1b0ec9a9a3890be84c826ff8dd2"),
    (GRADE, "sha256:b7c2f7432079282626efabb801cb928fd45e071c8d5cfc662fc2058dddddbd8a",
     "sha256:dc8815193cb5773100664b783b6c22ae31eeb1375b3d41ebe9a9ec5accffe437"),
    (VER, "sha256:158d55a15b826344a3df6c57d357ff8abc7a1bdce6953a90a5f30f3306b3cc73",
     "sha256:d18854cf87ba08a29ddea14e8187e6d8def879f1aa69428de8efaba71cf002f5"),
    (CMP, "sha256:579341356c53973a7178de02272d00f7d2ea986c1819b027cef05d915746c317",
     "sha256:c63ecf79a34a912dbce97181139e1ba4be3a597283d4ceec0dcecebb1a9a72e7"),
    (WEIGHT, "sha256:5676618b6dc76688fe89f33b709d204549772573a2e8704b9b6f6b6d538ef2aa",
     "sha256:2f8c1d5d5d9591e079d1ac333759ab78c87c5b4b42515d58143e2842acfe8126"),
]


@pytest.mark.parametrize("rec,key,rid", GOLDEN, ids=lambda v: type(v).__name__)
def test_golden_ids(rec: object, key: str, rid: str) -> None:
    sealed = seal(rec)  # type: ignore[type-var]
    assert (sealed.key, sealed.id) == (key, rid)


GOLDEN_SEEDS = [
    # computed by the generate step's and the verifiers' own seed functions before they were
    # merged into digest.seed: (base seed, prompt id, sample index) for a generation,
    # (base seed, generation id, method, repeat) for a verification, the tournament's parts
    ((0, "sha256:abc", 0), 1762481183255940208),
    ((7, "p1", 3), 6430931192892096301),
    ((0, "sha256:gen", "cot_binary", 0), 6556086807649887588),
    ((5, "tournament", "p", "a", "b", 0, 8, 1, 0,
      '{"max_tokens":128,"temperature":0.7,"top_p":1.0}'), 769759104605405723),
]


@pytest.mark.parametrize("parts,expected", GOLDEN_SEEDS)
def test_golden_seeds(parts: tuple[object, ...], expected: int) -> None:
    assert seed(*parts) == expected


def test_prompt_digest_follows_the_documented_contract_with_stdlib_only() -> None:
    # Recompute the prompt's key and id with hashlib + json, from the rules in digest.py and
    # records.py: sorted keys, no spaces, defaulted fields omitted, kind in the key payload.
    def sha(obj: object) -> str:
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    key = sha({"kind": "prompt", "task": "gsm8k", "item_id": "17", "kshot": 4})
    rid = sha({"key": key, "text": "Q: 2+2?\nA:", "reference": "4"})
    assert (record_key(PROMPT), record_id(PROMPT)) == (key, rid)
    assert (key, rid) == GOLDEN[0][1:]


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
def test_every_field_is_key_output_or_meta(cls: type) -> None:
    names = [f.name for f in msgspec.structs.fields(cls)]
    groups = [set(cls.KEY_FIELDS), set(cls.OUTPUT_FIELDS), set(META_FIELDS)]
    for name in names:
        assert sum(name in g for g in groups) == 1, name
    assert set().union(*groups) == set(names)


def test_provenance_and_defaults_do_not_move_ids() -> None:
    base = seal(GEN)
    with_prov = seal(msgspec.structs.replace(
        GEN, prov=Provenance(time=1.0, host="h", duration_s=2.0, versions={"x": "1"})))
    assert (with_prov.key, with_prov.id) == (base.key, base.id)
    # Setting a field to its default explicitly is the same as leaving it out.
    explicit = seal(msgspec.structs.replace(GEN, round=0))
    assert explicit.id == base.id


def test_inputs_move_the_key_and_outputs_move_only_the_id() -> None:
    base = seal(GEN)
    other_seed = seal(msgspec.structs.replace(GEN, seed=GEN.seed + 1))
    assert other_seed.key != base.key
    other_text = seal(msgspec.structs.replace(GEN, text="The answer is 5."))
    assert other_text.key == base.key and other_text.id != base.id
    other_temp = seal(msgspec.structs.replace(GEN, sampling=Sampling(temperature=1.0)))
    assert other_temp.key != base.key


def test_check_reports_tampering() -> None:
    sealed = seal(VER)
    assert check(sealed) is None
    tampered = msgspec.structs.replace(sealed, score=0.1)
    assert "id mismatch" in (check(tampered) or "")
    rekeyed = msgspec.structs.replace(sealed, method="cot_score")
    assert "key mismatch" in (check(rekeyed) or "")


def test_unknown_schema_is_refused() -> None:
    future = msgspec.structs.replace(seal(GRADE), schema=99)
    assert "schema 99" in (check(future) or "")


def test_decoding_an_old_line_without_new_defaulted_fields() -> None:
    line = (b'{"kind":"grade","schema":1,"key":"k","id":"i","generation_id":"g",'
            b'"grader":"gsm8k","strict":0.0,"flexible":1.0}')
    rec = decoder.decode(line)
    assert isinstance(rec, Grade) and rec.grader_version == "1" and rec.extracted is None


# Hypothesis: any record encodes, decodes to an equal record, and keeps its id.
_text = st.text(max_size=200)
_digest = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex())
_float = st.floats(allow_nan=False, allow_infinity=False, width=64)
_sampling = st.builds(
    Sampling, temperature=st.floats(0, 2), top_p=st.floats(0, 1), top_k=st.integers(0, 100),
    max_tokens=st.integers(1, 4096), stop=st.lists(_text, max_size=3).map(tuple),
)
_records = st.one_of(
    st.builds(Prompt, task=_text, split=_text, item_id=_text, kshot=st.integers(0, 8),
              template=_text, text=_text, reference=_text),
    st.builds(Generation, prompt_id=_digest, task=_text, model=_text, model_digest=_text,
              backend=_text, sampling=_sampling, sample_index=st.integers(0, 10**6),
              seed=st.integers(0, 2**63 - 1), round=st.integers(0, 20), text=_text,
              n_tokens=st.integers(0, 10**6), finish_reason=_text),
    st.builds(Grade, generation_id=_digest, grader=_text, grader_version=_text,
              strict=st.floats(0, 1), flexible=st.floats(0, 1),
              extracted=st.none() | _text),
    st.builds(Verification, generation_id=_digest, verifier=_text, method=_text,
              template=_text, sampling=st.none() | _sampling, sample_index=st.integers(0, 99),
              seed=st.integers(0, 2**32), raw=_text, score=st.none() | _float,
              parse_status=_text, p_correct=st.none() | st.floats(0, 1),
              p_incorrect=st.none() | st.floats(0, 1)),
    st.builds(Comparison, prompt_id=_digest, generation_a=_digest, generation_b=_digest,
              verifier=_text, bracket=st.integers(0, 99), bracket_round=st.integers(0, 9),
              raw=_text, winner=st.none() | _digest, parse_status=_text),
    st.builds(Weight, generation_id=_digest, spec=_text,
              inputs=st.lists(_digest, max_size=4).map(tuple), weight=_float),
)


@settings(max_examples=300, deadline=None)
@given(_records)
def test_roundtrip_keeps_record_and_id(rec: object) -> None:
    sealed = seal(rec)  # type: ignore[type-var]
    back = decoder.decode(encoder.encode(sealed))
    assert back == sealed
    assert check(back) is None
    assert (record_key(back), record_id(back)) == (sealed.key, sealed.id)


def test_canonical_json_sorts_keys_and_has_no_spaces() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "x"]}) == b'{"a":[1.5,"x"],"b":1}'
    assert digest({"a": 1}) == digest({"a": 1})
    assert digest({"a": 1}).startswith("sha256:")
    assert len(digest({"a": 1})) == len("sha256:") + 64
