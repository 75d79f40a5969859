"""The request schema and the URI parser: the data-loss regression, the rules, and property-based
fuzzing (hypothesis) of everything a caller can put in a body."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stereocrafter.echo import ECHO_LIMIT, MESSAGE_LIMIT, bounded, echo, inert
from stereocrafter.errors import BadRequestError
from stereocrafter.locations import MAX_KEY_BYTES, S3Location
from stereocrafter.serving.schemas import InvocationRequest, parse_invocation

FIELDS = ["s3_input_uri", "s3_output_uri", "mode", "max_disp", "seed", "tile_num", "overwrite"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def body(**fields: object) -> bytes:
    return json.dumps(
        {"s3_input_uri": "s3://in-bucket/a.mp4", "s3_output_uri": "s3://out/b.mp4", **fields}
    ).encode()


def refused(raw: bytes) -> str:
    with pytest.raises(BadRequestError) as caught:
        parse_invocation(raw)
    assert caught.value.status == 400
    return caught.value.message


def test_a_trailing_newline_cannot_make_the_output_the_input() -> None:
    """The data-loss case: ``$`` matched before a trailing newline, the key parsed without it, and
    the raw strings compared unequal, so the upload went to the input's key."""
    message = refused(
        body(
            s3_input_uri="s3://in-bucket/media/victim.mp4", s3_output_uri="s3://in-bucket/media/victim.mp4\n"
        )
    )
    assert "control character U+000A" in message and "\n" not in message
    for suffix in ("\r", "\r\n", "\x00", "\x1b[0m", "\x85", "\u0085"):
        refused(body(s3_output_uri="s3://in-bucket/a.mp4" + suffix))
    message = refused(body(s3_output_uri="s3://in-bucket/a.mp4"))
    assert "names the input object" in message


def test_locations_are_parsed_once_and_compared_parsed() -> None:
    request = parse_invocation(body(s3_input_uri="s3://in-bucket/dir/a b+é.mp4"))
    assert request.s3_input_uri == S3Location("in-bucket", "dir/a b+é.mp4")
    assert request.s3_output_uri == S3Location("out", "b.mp4")
    assert request.model_dump()["s3_input_uri"] == "s3://in-bucket/dir/a b+é.mp4"
    # a parsed location passes through unchanged (the client and tests build requests directly)
    assert InvocationRequest(s3_input_uri=S3Location("in-bucket", "k"), s3_output_uri="s3://out/k").overwrite


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://in-bucket", "not an s3://bucket/key"),
        ("s3://in-bucket/", "no object key"),
        ("S3://in-bucket/a", "not an s3://bucket/key"),
        ("https://in-bucket/a", "not an s3://bucket/key"),
        (" s3://in-bucket/a", "not an s3://bucket/key"),
        ("s3://In-Bucket/a", "invalid bucket name"),
        ("s3://ab/a", "invalid bucket name"),
        ("s3://in..bucket/a", "invalid bucket name"),
        ("s3://192.168.1.1/a", "invalid bucket name"),
        ("s3://in-bucket/dir/", "prefix"),
        ("s3://in-bucket/a/../b.mp4", "'..' path segment"),
        ("s3://in-bucket/./b.mp4", "'..' path segment"),
        ("s3://in-bucket/" + "k" * (MAX_KEY_BYTES + 1), f"S3 allows {MAX_KEY_BYTES}"),
        ("s3://in-bucket/" + "é" * 513, "1026 bytes"),
        ("s3://in-bucket/\ud800.mp4", "not valid Unicode"),
        ("s3://in-bucket/a\tb", "U+0009"),
        ("s3://in-bucket/a\x7f", "U+007F"),
        ("s3://in-bucket/a\x9b31m", "U+009B"),
    ],
)
def test_uri_rules(uri: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        S3Location.parse(uri)
    assert reason in str(caught.value)
    assert reason in refused(body(s3_input_uri=uri))


def test_largest_valid_key_is_accepted() -> None:
    key = "k" * MAX_KEY_BYTES
    assert S3Location.parse(f"s3://in-bucket/{key}").key == key


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"s3_input_uri": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "nested too deeply"),
        (b'{"seed": ' + b"9" * 5_000 + b"}", "cannot be read"),
        (b'{"mode": "sbs", "mode": "anaglyph"}', "appears twice"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"", "JSON object"),
        (b"null", "JSON object"),
        (b"[]", "JSON object"),
        (b'{"s3_input_uri": ', "not valid JSON"),
        (body(max_disp=float("nan")), "max_disp"),
        (body(seed=2**31), "seed"),
        (body(mode="3d"), "mode"),
        (body(tile_num=3), "tile_num"),
    ],
)
def test_malformed_bodies_are_400_not_500(raw: bytes, needle: str) -> None:
    assert needle in refused(raw)


@pytest.mark.parametrize(
    "raw",
    [
        body(**{"x" * 100_000: 1}),
        body(s3_input_uri="http://" + "a" * 100_000),
        body(s3_input_uri="s3://in-bucket/" + "k" * 100_000),
        json.dumps({f"field{i}" * 50: i for i in range(50)}).encode(),
    ],
    ids=["100 KB field name", "100 KB http URI", "100 KB key", "50 long unknown fields"],
)
def test_messages_echo_at_most_a_bounded_part_of_the_input(raw: bytes) -> None:
    message = refused(raw)
    assert len(message) <= MESSAGE_LIMIT and message.isprintable()
    assert "characters" in message or "more" in message  # says how much was not shown


def test_echo_escapes_and_bounds() -> None:
    assert echo("s3://a/b\n") == "'s3://a/b\\x0a'"
    assert echo("\x1b[31mred") == "'\\x1b[31mred'"
    assert echo("a\\x0a") == "'a\\\\x0a'"  # a literal backslash is not mistaken for an escape
    long = echo("é" * 100_000)
    assert len(long) <= ECHO_LIMIT + 60 and "100000 characters" in long
    assert len(echo("\x00" * 1000)) <= ECHO_LIMIT + 60
    assert inert("line\nnext\u2028\u202e") == "line\\x0anext\\u2028\\u202e"
    assert len(bounded("x" * 5000)) == MESSAGE_LIMIT


# -- property-based fuzzing --------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=20,
)
any_text = st.text(st.characters(codec=None), max_size=60) | st.text(max_size=3000)
buckets = st.from_regex(r"[a-z0-9][a-z0-9.\-]{1,20}[a-z0-9]", fullmatch=True) | st.sampled_from(
    ["in-bucket", "out"]
)
keys = (
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc",)), min_size=1, max_size=40)  # mostly valid
    | st.text(st.characters(codec=None), min_size=0, max_size=40)  # anything: controls, surrogates
    | st.text(min_size=1000, max_size=1100)  # around S3's 1024-byte limit
)
uris = st.builds(lambda b, k: f"s3://{b}/{k}", buckets, keys) | any_text
# Ways a second string can name the first object: the tail a regex with "$" ignores, and more.
tails = st.sampled_from(["", "\n", "\r\n", "\x00", " ", "/", "\u2028", "\x85", "\t", "/.", "%0a", "\\n"])


def check_outcome(raw: bytes) -> InvocationRequest | None:
    """The invariants for any body: a valid request whose output is not its input, or a 400 whose
    message is printable and within the bound. Any other exception fails the test."""
    try:
        request = parse_invocation(raw)
    except BadRequestError as err:
        assert err.status == 400
        assert len(err.message) <= MESSAGE_LIMIT and err.message.isprintable(), err.message
        return None
    source, target = request.s3_input_uri, request.s3_output_uri
    assert (source.bucket, source.key) != (target.bucket, target.key)
    for location in (source, target):
        assert S3Location.parse(location.uri) == location  # canonical: parses back to itself
        assert len(location.key.encode("utf-8")) <= MAX_KEY_BYTES
        assert location.key.isprintable() or not any(
            ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in location.key
        )
    return request


@FUZZ
@given(json_values)
def test_fuzz_any_json_document(value: object) -> None:
    check_outcome(json.dumps(value).encode())


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_any_bytes(raw: bytes) -> None:
    check_outcome(raw)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS) | any_text, json_values | uris, max_size=8), uris, uris)
def test_fuzz_requests_with_random_fields(extra: dict, source: str, target: str) -> None:
    check_outcome(json.dumps({"s3_input_uri": source, "s3_output_uri": target, **extra}).encode())


@FUZZ
@given(buckets, keys, tails, tails)
@example("in-bucket", "media/victim.mp4", "", "\n")
def test_fuzz_output_that_differs_from_the_input_only_in_its_tail(
    bucket: str, key: str, tail_in: str, tail_out: str
) -> None:
    source, target = f"s3://{bucket}/{key}{tail_in}", f"s3://{bucket}/{key}{tail_out}"
    request = check_outcome(json.dumps({"s3_input_uri": source, "s3_output_uri": target}).encode())
    if request is not None:  # accepted: the two really are different S3 keys
        assert request.s3_input_uri.key != request.s3_output_uri.key
        assert request.s3_input_uri.uri == source and request.s3_output_uri.uri == target


LONG = {"s3_input_uri": "s3://inbox/a.mp4", "s3_output_uri": "s3://outbox/a.mp4"}


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"depth_scale": "NaN"}, "depth_scale"),
        ({"depth_scale": "Infinity"}, "depth_scale"),
        ({"depth_scale": -1}, "depth_scale"),
        ({"depth_scale": 1e7}, "depth_scale"),
        ({"depth_shift": "-Infinity"}, "depth_shift"),
        ({"depth_shift": 2e6}, "depth_shift"),
        ({"depth_range": [0, "NaN"]}, "depth_range"),
        ({"depth_range": [0, 1, 2]}, "depth_range"),
        ({"depth_range": [0.5, 0.5]}, "low < high"),
        ({"depth_range": [0, 1e-300]}, "too narrow"),  # a zero span in float32: NaN
        ({"depth_range": [0, 1e-30]}, "too narrow"),  # survives float32, flattens the clip
        ({"depth_range": [1e5, 1e5 + 0.01]}, "too narrow"),  # 1e-7 of the values' magnitude
        ({"depth_range": "0,1"}, "depth_range"),
        ({"depth_uri": "s3://outbox/a.mp4"}, "depth_uri names"),
        ({"depth_uri": "s3://inbox/d.mkv\n"}, "depth_uri"),
    ],
)
def test_long_video_fields_are_bounded(fields: dict, needle: str) -> None:
    # NaN and Infinity as JSON's non-standard literals, as Python's json module writes them
    raw = json.dumps({**LONG, **fields}).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")
    raw = raw.replace('"-Infinity"', "-Infinity")
    with pytest.raises(BadRequestError, match=needle) as caught:
        parse_invocation(raw.encode())
    assert len(caught.value.message) <= MESSAGE_LIMIT


DEPTH_TASK = {
    "task": "depth",
    "s3_input_uri": "s3://inbox/a.mp4",
    "depth_output_uri": "s3://outbox/a.depth.mkv",
}
ALIGNED = {
    "depth_uri": "s3://outbox/a.depth.mkv",
    "depth_scale": 1.5,
    "depth_shift": -0.2,
    "depth_range": [0.1, 0.9],
}


def test_the_two_tasks_take_their_own_fields() -> None:
    depth = parse_invocation(json.dumps({**DEPTH_TASK, "seed": 3}).encode())
    assert depth.task == "depth" and depth.output.uri == "s3://outbox/a.depth.mkv"
    assert depth.s3_output_uri is None and depth.seed == 3
    stereo = parse_invocation(json.dumps({**LONG, **ALIGNED}).encode())
    assert stereo.task == "stereo" and stereo.output.uri == "s3://outbox/a.mp4"
    assert (stereo.depth_scale, stereo.depth_shift, stereo.depth_range) == (1.5, -0.2, (0.1, 0.9))
    plain = parse_invocation(json.dumps(LONG).encode())  # today's request: nothing new set
    assert (plain.task, plain.depth_uri, plain.depth_scale, plain.depth_range) == ("stereo", None, None, None)
    for body, needle in [
        ({**DEPTH_TASK, "report": False}, "report does not apply to the depth task"),
        ({**DEPTH_TASK, **LONG}, "s3_output_uri does not apply"),
        ({"s3_input_uri": "s3://inbox/a.mp4"}, "s3_output_uri is required"),
    ]:
        with pytest.raises(BadRequestError, match=needle):
            parse_invocation(json.dumps(body).encode())


def test_every_s3_uri_in_the_docs_is_one_the_service_accepts() -> None:
    """The README's, docs/' and the package's examples are copied by callers: each must parse (a
    bucket name needs 3 characters, so "s3://in/a.mp4" in an example once got a 400)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    texts = [
        root / "README.md",
        *sorted((root / "docs").glob("*.md")),
        *sorted((root / "stereocrafter").rglob("*.py")),
    ]
    found = []
    for path in texts:
        for uri in re.findall(r"s3://[^\s\"'`)\]]+", path.read_text()):
            if any(mark in uri for mark in "<{…(?\\"):  # placeholders, patterns, f-strings
                continue
            found.append((path.name, uri.rstrip(".,;:")))
    assert len(found) >= 20, found
    for _, uri in found:  # a prefix (request_prefix=...) is checked as the keys it will hold
        S3Location.parse(uri + "x" if uri.endswith("/") else uri)  # ValueError naming the rule
