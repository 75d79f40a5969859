"""The weights manifest as data: the published rows are well formed and name what the repos hold (MI-GAN's
ONNX pipeline, not a ``.pt``), and the JSON schema the lock, the mirror and an operator's manifest share
round-trips and refuses what is malformed, by name."""

from __future__ import annotations

import json

import pytest

from stereocrafter.weights.manifest import ALTERNATIVES, MIGAN_PT, PUBLISHED, WeightFile, from_json, to_json


def test_the_published_rows_are_well_formed_and_mi_gan_asks_for_the_onnx_file() -> None:
    for row in PUBLISHED:
        row.check()
    assert [row.path for row in PUBLISHED if row.model == "migan"] == ["migan_pipeline_v2.onnx"]
    assert {row.model for row in PUBLISHED} == {"vda-small", "depthcrafter", "stereocrafter", "svd", "migan"}
    unpinned = {row.repo for row in PUBLISHED if row.revision is None}
    assert unpinned == {"TencentARC/StereoCrafter"}  # seen pinned nowhere: locked at the first download
    vda = next(row for row in PUBLISHED if row.model == "vda-small")
    assert vda.size == 116_440_756
    assert vda.sha256 == "13379300b739e659f076a59d52e9801bd8d38c541a7e71f73bbca4dcfb013609"
    assert ALTERNATIVES["migan"] == (MIGAN_PT,) and MIGAN_PT.size == 29_553_256


def test_the_schema_round_trips() -> None:
    assert from_json(to_json(PUBLISHED)) == PUBLISHED


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("revision", "main", "revision 'main' is not a 40-hex commit"),
        ("sha256", "ABC", "is not 64 lower-case hex digits"),
        ("path", "../../etc/passwd", "not a <owner>/<name> repo and a relative path"),
        ("repo", "just-a-name", "not a <owner>/<name> repo"),
        ("size", -1, "size -1 is negative"),
        ("colour", "blue", "unknown fields ['colour']"),
    ],
)
def test_a_malformed_row_is_refused_by_name(field: str, value: object, says: str) -> None:
    row = json.loads(to_json([WeightFile("svd", "owner/name", "a" * 40, "x.bin")]))
    row["files"][0][field] = value
    with pytest.raises(ValueError, match=r"lock\.json") as caught:
        from_json(json.dumps(row), "lock.json")
    assert says in str(caught.value)


@pytest.mark.parametrize("text", ["{", "[]", '{"format": 2, "files": []}', '{"format": 1, "files": [{}]}'])
def test_what_is_not_a_manifest_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"m\.json"):
        from_json(text, "m.json")
