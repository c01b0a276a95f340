"""The schema, the condition contract between datasets, checkpoints, packs and recipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.schema import Attribute, Schema, SchemaError, Translation

COLORS = tuple(f"c{i:02d}" for i in range(14))  # more values than an error message lists


def make_schema(**changes) -> Schema:
    attrs = {
        "style": Attribute("style", ("cat", "dog", "fox"), labels=("Cat", "Dog", "Fox"), description="animal"),
        "eyes": Attribute("eyes", ("dot", "big"), default="dot"),
        "color": Attribute("color", COLORS),
    }
    attrs.update(changes)
    return Schema(tuple(attrs.values()), name="test")


SCHEMA = make_schema()


def test_shape_of_a_schema():
    assert SCHEMA.names == ("style", "eyes", "color")
    assert SCHEMA.cardinalities == (3, 2, 14)
    assert len(SCHEMA) == 3
    assert SCHEMA["eyes"].default == "dot"


def test_document_round_trip_through_json():
    doc = json.loads(json.dumps(SCHEMA.to_dict()))
    again = Schema.from_dict(doc)
    assert again.to_dict() == SCHEMA.to_dict()
    assert again.fingerprint() == SCHEMA.fingerprint()
    assert again["style"] == SCHEMA["style"]  # labels and description survive
    assert again.name == "test" and again["eyes"].default == "dot"
    # an attribute without labels is written with its values as labels
    assert doc["attributes"][2]["labels"] == list(COLORS)


def test_minimal_document_fills_the_optional_fields():
    s = Schema.from_dict({"attributes": [{"name": "style", "values": ["cat", "dog"]}]})
    assert s.name == "" and s["style"].default is None and s["style"].labels == ()
    assert s["style"].label("dog") == "dog"


@pytest.mark.parametrize("doc", [
    {},
    {"attributes": [{"name": "style"}]},
    {"attributes": [{"values": ["cat"]}]},
    {"attributes": None},
])
def test_malformed_documents_are_schema_errors(doc):
    with pytest.raises(SchemaError, match="malformed schema document"):
        Schema.from_dict(doc)


@pytest.mark.parametrize("make, message", [
    (lambda: Schema(()), "at least one attribute"),
    (lambda: Schema((Attribute("a", ("x",)), Attribute("a", ("y",)))), "duplicate attribute names"),
    (lambda: Attribute("", ("x",)), "non-empty identifier"),
    (lambda: Attribute("bad name", ("x",)), "non-empty identifier"),
    (lambda: Attribute("a", ()), "has no values"),
    (lambda: Attribute("a", ("x", "x")), "duplicate values"),
    (lambda: Attribute("a", ("x", "y"), default="z"), "not one of its values"),
    (lambda: Attribute("a", ("x", "y"), labels=("X",)), "labels and values differ"),
])
def test_invalid_schemas_say_what_is_wrong(make, message):
    with pytest.raises(SchemaError, match=message):
        make()


def test_encode_and_decode_are_inverse():
    cond = {"style": "fox", "eyes": "big", "color": "c13"}
    assert SCHEMA.encode(cond) == (2, 1, 13)
    assert SCHEMA.decode((2, 1, 13)) == cond
    assert SCHEMA.encode({"color": "c00", "style": "cat", "eyes": "dot"}) == (0, 0, 0)  # any key order


def test_encode_errors_name_the_problem():
    with pytest.raises(SchemaError, match="missing eyes, color"):
        SCHEMA.encode({"style": "cat"})
    with pytest.raises(SchemaError, match=r"unknown attribute 'wings'; known: style, eyes, color"):
        SCHEMA.encode({"style": "cat", "eyes": "dot", "color": "c00", "wings": "big"})
    with pytest.raises(SchemaError, match=r"unknown style 'dragon'; choose one of: cat, dog, fox$"):
        SCHEMA.encode({"style": "dragon", "eyes": "dot", "color": "c00"})


def test_decode_refuses_wrong_length_and_out_of_range():
    with pytest.raises(SchemaError, match="expected 3 condition indices, got 2"):
        SCHEMA.decode((0, 0))
    with pytest.raises(SchemaError, match=r"index 2 out of range for eyes \(2 values\)"):
        SCHEMA.decode((0, 2, 0))
    with pytest.raises(SchemaError, match="out of range"):
        SCHEMA.decode((-1, 0, 0))


def test_a_long_list_of_choices_is_shortened():
    with pytest.raises(SchemaError) as e:
        SCHEMA["color"].index("c99")
    assert str(e.value).endswith("c10, c11, ...") and "c12" not in str(e.value)


def test_fingerprint_is_pinned():
    # The fingerprint is written into every pack's manifest: changing how it is computed
    # would make every installed pack fail its check.
    assert SCHEMA.fingerprint() == "52759d34fba05524"


def test_fingerprint_ignores_presentation():
    plain = Schema((Attribute("style", ("cat", "dog", "fox")), Attribute("eyes", ("dot", "big")),
                    Attribute("color", COLORS)), name="other name")
    assert plain.fingerprint() == SCHEMA.fingerprint()  # labels, defaults, descriptions, name excluded


@pytest.mark.parametrize("other", [
    make_schema(style=Attribute("style", ("dog", "cat", "fox"))),  # value order: indices mean other values
    make_schema(style=Attribute("style", ("cat", "dog", "fox", "owl"))),  # a value added
    make_schema(style=Attribute("kind", ("cat", "dog", "fox"))),  # an attribute renamed
    Schema((SCHEMA["eyes"], SCHEMA["style"], SCHEMA["color"])),  # attribute order
    Schema((SCHEMA["style"], SCHEMA["eyes"])),  # an attribute removed
])
def test_fingerprint_changes_with_anything_that_changes_indices(other):
    assert other.fingerprint() != SCHEMA.fingerprint()


def test_complete_keeps_given_values_then_defaults_then_draws():
    draws = [7, 101, 31]  # 101 % 2 = 1: eyes must still take its default (0)
    assert SCHEMA.complete({"style": "dog", "eyes": "big", "color": "c05"}, draws) == (1, 1, 5)
    # eyes has a default; style and color take their draw modulo their cardinality
    assert SCHEMA.complete({}, draws) == (7 % 3, 0, 31 % 14)
    assert SCHEMA.complete(None, draws) == SCHEMA.complete({}, draws)
    assert SCHEMA.complete({"style": None, "eyes": None}, draws) == SCHEMA.complete({}, draws)


def test_complete_setting_one_attribute_leaves_the_others_choice_alone():
    draws = [5, 9, 12]
    free = SCHEMA.complete({}, draws)
    fixed = SCHEMA.complete({"style": "cat"}, draws)
    assert fixed[0] == 0 and fixed[1:] == free[1:]


def test_complete_refuses_unknown_attributes_values_and_wrong_draws():
    with pytest.raises(SchemaError, match="unknown attribute 'wings'"):
        SCHEMA.complete({"wings": "big"}, [0, 0, 0])
    with pytest.raises(SchemaError, match="unknown eyes 'laser'; choose one of: dot, big"):
        SCHEMA.complete({"eyes": "laser"}, [0, 0, 0])
    with pytest.raises(SchemaError, match="expected 3 draws"):
        SCHEMA.complete({}, [0, 0])


def test_labels_are_for_display_only():
    style = SCHEMA["style"]
    assert style.label("fox") == "Fox"
    assert SCHEMA["eyes"].label("big") == "big"  # no labels: the value itself
    with pytest.raises(SchemaError, match="unknown style"):
        style.label("owl")


TRANSLATED = {
    "zh-CN": {"name": "动物", "description": "是哪种小动物", "labels": {"cat": "猫", "dog": "狗"}},
    "ja": {"labels": {"cat": "ねこ"}},
}


def test_translations_round_trip_and_stay_out_of_the_fingerprint():
    doc = SCHEMA.to_dict()
    doc["attributes"][0]["translations"] = TRANSLATED
    schema = Schema.from_dict(json.loads(json.dumps(doc)))
    zh = schema["style"].translations["zh-CN"]
    assert zh == Translation("动物", "是哪种小动物", {"cat": "猫", "dog": "狗"})
    assert schema["style"].translations["ja"].labels == {"cat": "ねこ"} and not schema["style"].translations["ja"].name
    assert schema.to_dict() == doc  # written back as read (empty fields left out)
    assert schema.fingerprint() == SCHEMA.fingerprint() == "52759d34fba05524"
    assert schema["style"].label("cat") == "Cat"  # the default label is untouched


def test_documents_without_translations_are_written_as_before():
    doc = SCHEMA.to_dict()
    assert all("translations" not in a for a in doc["attributes"])
    bundled = json.loads((Path(__file__).resolve().parents[2] / "engine/packs/moe-default/manifest.json").read_text())
    assert Schema.from_dict(bundled["schema"]).to_dict() == bundled["schema"]


@pytest.mark.parametrize("translations, message", [
    ({"ja": Translation(labels={"owl": "ふくろう"})}, "ja labels unknown values"),
    ({"ja": Translation(labels={"cat": " "})}, "empty ja label"),
    ({"": Translation()}, "map locale codes"),
    ({"ja": {"labels": {}}}, "map locale codes"),
])
def test_bad_translations_say_what_is_wrong(translations, message):
    with pytest.raises(SchemaError, match=message):
        Attribute("style", ("cat", "dog"), translations=translations)


def test_malformed_translation_documents_are_schema_errors():
    for words in ("猫", {"labels": ["猫"]}):
        doc = {"attributes": [{"name": "style", "values": ["cat"], "translations": {"zh-CN": words}}]}
        with pytest.raises(SchemaError, match="malformed schema document"):
            Schema.from_dict(doc)


def test_importable_without_numpy():
    code = "import sys, engine.schema; print('numpy' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
