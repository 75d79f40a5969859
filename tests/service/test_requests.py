"""Bad input on the real service: each gets its precise 4xx with a JSON body, loses nothing and leaves
the service healthy (bounded messages, clean logs, body limits, overwrite, a fuzzed live server)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stereocrafter.client import BadRequest, InputNotFound, InvalidVideo, OutputExists
from stereocrafter.echo import MESSAGE_LIMIT
from stereocrafter.testing.stack import Service
from tests.service.helpers import BUCKET, CLIP, body

BAD_REQUESTS: list[tuple[str, bytes, int, str]] = [
    ("malformed JSON", b'{"s3_input_uri": ', 400, "bad_request"),
    ("empty body", b"", 400, "bad_request"),
    ("a JSON list", b"[1, 2]", 400, "bad_request"),
    ("unknown field", body(speed=2), 400, "bad_request"),
    ("missing output", json.dumps({"s3_input_uri": CLIP}).encode(), 400, "bad_request"),
    ("bad mode", body(mode="3d"), 400, "bad_request"),
    ("http URI", body(s3_input_uri="https://videos/in/clip.mp4"), 400, "bad_request"),
    ("URI without key", body(s3_input_uri="s3://videos"), 400, "bad_request"),
    ("output equals input", body(s3_output_uri=CLIP), 400, "bad_request"),
    ("output is input plus a newline", body(s3_output_uri=CLIP + "\n"), 400, "bad_request"),
    ("key over 1024 bytes", body(s3_input_uri="s3://videos/" + "k" * 2000), 400, "bad_request"),
    ("body over 64 KiB", body(s3_input_uri="s3://videos/" + "k" * 100_000), 413, "body_too_large"),
    ("JSON nested 100,000 deep", b"[" * 30_000 + b"]" * 30_000, 400, "bad_request"),
    ("duplicate field", b'{"mode": "sbs", "mode": "anaglyph"}', 400, "bad_request"),
    (
        "missing output bucket, found before the input is read",
        body(s3_input_uri="s3://videos/in/notes.mp4", s3_output_uri="s3://no-such-bucket/o.mp4"),
        400,
        "bad_request",
    ),
    ("prefix as output", body(s3_output_uri="s3://videos/out/"), 400, "bad_request"),
    ("unknown preset", body(preset="turbo2"), 400, "bad_request"),
    ("max_disp out of range", body(max_disp=500), 400, "bad_request"),
    ("negative seed", body(seed=-1), 400, "bad_request"),
    ("tile_num 3", body(tile_num=3), 400, "bad_request"),
    ("missing object", body(s3_input_uri="s3://videos/in/none.mp4"), 404, "input_not_found"),
    ("missing bucket", body(s3_input_uri="s3://no-such-bucket/a.mp4"), 404, "input_not_found"),
    ("not a video", body(s3_input_uri="s3://videos/in/notes.mp4"), 422, "invalid_video"),
    ("truncated video", body(s3_input_uri="s3://videos/in/cut.mp4"), 422, "invalid_video"),
    ("too many frames", body(s3_input_uri="s3://videos/in/long.mp4"), 413, "segment_too_large"),
    ("output bucket missing", body(s3_output_uri="s3://no-such-bucket/o.mp4"), 400, "bad_request"),
]


@pytest.mark.parametrize(("case", "body", "status", "code"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_their_status_and_leave_the_service_healthy(
    service: Service, env: dict, case: str, body: bytes, status: int, code: str
) -> None:
    response = service.post(body, **{"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    data = response.json()
    # a job that failed after taking its slot (GPU) also says what it held, and its cost
    assert set(data) - {"gpu_seconds", "cost"} == {"error", "message", "request_id"} and data["error"] == code
    assert ("gpu_seconds" in data) == ("cost" in data) and data.get("gpu_seconds", 0) >= 0
    assert "Traceback" not in data["message"] and data["message"]
    assert response.headers["x-request-id"] == data["request_id"]
    assert service.healthy()
    objects = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix="o.mp4").get("Contents", [])
    assert objects == [], "a failed job left an output object"


def test_client_raises_typed_errors(service: Service) -> None:
    with pytest.raises(BadRequest) as caught:
        service.client.convert(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/o.mp4", mode="stereo")
    assert caught.value.status == 400 and caught.value.request_id
    with pytest.raises(InputNotFound):
        service.client.convert(f"s3://{BUCKET}/in/none.mp4", f"s3://{BUCKET}/o.mp4")
    with pytest.raises(InvalidVideo):
        service.client.convert(f"s3://{BUCKET}/in/notes.mp4", f"s3://{BUCKET}/o.mp4")
    assert service.client.ping()


def test_a_trailing_newline_does_not_overwrite_the_input(service: Service, env: dict) -> None:
    s3 = env["s3"]
    before = s3.head_object(Bucket=BUCKET, Key="in/clip.mp4")
    response = service.post(
        json.dumps({"s3_input_uri": CLIP, "s3_output_uri": CLIP + "\n"}),
        **{"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "U+000A" in response.json()["message"]
    after = s3.head_object(Bucket=BUCKET, Key="in/clip.mp4")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    assert service.healthy()


@pytest.mark.parametrize(
    "fields",
    [
        {"x" * 60_000: 1},
        {"s3_input_uri": "http://" + "a" * 60_000},
        {"s3_output_uri": "s3://videos/" + "k" * 60_000},
    ],
    ids=["60 KB field name", "60 KB http URI", "60 KB key"],
)
def test_error_messages_echo_a_bounded_part_of_the_input(service: Service, fields: dict) -> None:
    response = service.post(body(**fields))
    assert response.status_code == 400
    message = response.json()["message"]
    assert len(message) <= MESSAGE_LIMIT and "characters" in message
    assert len(response.content) < 2 * MESSAGE_LIMIT


def test_control_characters_never_reach_the_log_raw(service: Service) -> None:
    marker = "inject-7f3a"
    response = service.post(body(s3_output_uri=f"s3://videos/{marker}\x1b[2J\x1b[31m\r\nFAKE LOG LINE\x07"))
    assert response.status_code == 400
    assert "\x1b" not in response.text and "U+001B" in response.json()["message"]
    # an S3 failure logs the key: a key with a bidi override and a line separator (valid in S3)
    response = service.post(body(s3_input_uri=f"s3://videos/{marker}\u202e\u2028x.mp4"))
    assert response.status_code == 404
    log = service.log_text()
    assert "\x1b" not in log and "\x07" not in log and "\u202e" not in log and "\u2028" not in log


def test_a_declared_oversized_body_is_refused_before_it_is_read(service: Service) -> None:
    """A body declared as 512 MiB: 413 after the headers, with only a kilobyte sent."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 536870912\r\n\r\n"
    )
    status, payload, sent = service.raw_exchange(head, [b" " * 1024] * 64, pause=0.05)
    assert status == 413 and sent < 64 * 1024
    data = json.loads(payload)
    assert data["error"] == "body_too_large" and "65536" in data["message"]
    assert service.healthy()


def test_a_chunked_body_is_cut_off_at_the_limit(service: Service) -> None:
    """No length declared: the service stops reading at 64 KiB and answers 413."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (8192, b" " * 8192)
    status, payload, sent = service.raw_exchange(head, [chunk] * 512, pause=0.02)  # 4 MiB offered
    assert status == 413 and json.loads(payload)["error"] == "body_too_large"
    assert sent < 1024 * 1024  # answered long before the 4 MiB were sent
    assert service.healthy()


def test_a_body_just_under_the_limit_is_read(service: Service) -> None:
    padded = body(mode="sbs", s3_input_uri="s3://videos/in/none.mp4")
    padded = padded[:-1] + b" " * (65536 - len(padded)) + b"}"
    assert len(padded) == 65536
    assert service.post(padded).status_code == 404  # parsed, then the input was looked up


def test_overwrite_false_refuses_an_existing_output(service: Service, env: dict) -> None:
    env["s3"].put_object(Bucket=BUCKET, Key="out/keep.mp4", Body=b"keep me")
    response = service.post(body(s3_output_uri=f"s3://{BUCKET}/out/keep.mp4", overwrite=False))
    assert response.status_code == 409 and response.json()["error"] == "output_exists"
    assert env["s3"].get_object(Bucket=BUCKET, Key="out/keep.mp4")["Body"].read() == b"keep me"
    with pytest.raises(OutputExists):
        service.client.convert(CLIP, f"s3://{BUCKET}/out/keep.mp4", overwrite=False)


def test_overwrite_false_guards_the_report_objects_too(service: Service, env: dict) -> None:
    """A job writes the video and, beside it, its report (.report.json, .report.png): with
    overwrite false an existing report object is refused before any work (409), and nothing of
    the job is written."""
    env["s3"].put_object(Bucket=BUCKET, Key="out/guarded.mp4.report.png", Body=b"an earlier report")
    response = service.post(body(s3_output_uri=f"s3://{BUCKET}/out/guarded.mp4", overwrite=False))
    assert response.status_code == 409 and response.json()["error"] == "output_exists", response.text
    assert "guarded.mp4.report.png" in response.json()["message"]
    listed = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix="out/guarded.mp4")["Contents"]
    assert [o["Key"] for o in listed] == ["out/guarded.mp4.report.png"]  # no video, no JSON
    kept = env["s3"].get_object(Bucket=BUCKET, Key="out/guarded.mp4.report.png")["Body"].read()
    assert kept == b"an earlier report"
    # without a report, the same output is free to write
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/guarded.mp4", overwrite=False, report=False)
    assert result["frames"] == 10 and result["report_uris"] is None


field_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)


live_uris = st.builds(
    lambda bucket, key, tail: f"s3://{bucket}/{key}{tail}",
    st.sampled_from(["videos", "no-such-bucket", "Bad_Bucket"]),
    st.text(st.characters(codec="utf-8"), min_size=0, max_size=30),
    st.sampled_from(["", "\n", "/", "\x1b[31m", "/../x"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.sampled_from(["s3_output_uri", "mode", "max_disp", "seed", "tile_num", "overwrite", "junk"]),
        field_values | live_uris,
        max_size=5,
    ),
    live_uris,
)
def test_fuzz_the_live_server_never_answers_5xx(service: Service, fields: dict, source: str) -> None:
    """Random requests against the running service, none of which can convert anything (the
    input never exists): every answer is a 4xx in the JSON error shape, within the bound."""
    payload = {"s3_input_uri": source.replace("videos/", "videos/absent/", 1), **fields}
    body = json.dumps(payload)  # (Python's encoder writes NaN and Infinity; the service refuses them)
    response = httpx.post(f"{service.url}/invocations", content=body, timeout=60)
    assert 400 <= response.status_code < 500, response.text
    data = response.json()
    assert set(data) == {"error", "message", "request_id"}
    assert len(data["message"]) <= MESSAGE_LIMIT and data["message"].isprintable()
