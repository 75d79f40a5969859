"""Long videos on the real service: the depth task, a stored depth (reused, refused when damaged,
foreign or crafted), the new fields' bounds, and convert_segments end to end with stitching."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.testing.media import make_video, scene_frames
from stereocrafter.testing.stack import Service, tree
from tests.service.helpers import BUCKET, CLIP, OUT, metric, nothing_at
from tests.support.memory import PeakGrowth

SEGMENT_FRAMES = 8


@pytest.fixture(scope="module")
def long_video(env: dict) -> dict:
    """A 32-frame source with audio and its 4 segments (8 frames each, with their audio), in S3."""
    frames = scene_frames(4 * SEGMENT_FRAMES, 64, 48, seed=9)
    tmp = env["tmp"]
    source = make_video(tmp / "film.mp4", frames, fps=24, audio_codec="aac")
    uris = []
    for i in range(4):
        part = frames[i * SEGMENT_FRAMES : (i + 1) * SEGMENT_FRAMES]
        path = make_video(tmp / f"film_{i}.mp4", part, fps=24, audio_codec="aac")
        env["s3"].upload_file(str(path), BUCKET, f"film/in_{i}.mp4")
        uris.append(f"s3://{BUCKET}/film/in_{i}.mp4")
    return {"source": source, "inputs": uris}


def test_the_depth_task_stores_the_depth_and_returns_its_summary(service: Service, env: dict,
                                                                  long_video: dict) -> None:  # fmt: skip
    result = service.client.depth(long_video["inputs"][0], f"s3://{BUCKET}/film/d0.mkv")
    assert result["task"] == "depth" and result["frames"] == SEGMENT_FRAMES and result["tiny_weights"]
    assert (result["source_width"], result["source_height"]) == (64, 48)
    stats = result["stats"]
    assert stats["min"] <= stats["p1"] <= stats["p99"] <= stats["max"]
    thumbs = result["thumbnails"]
    assert (result["depth_width"], result["depth_height"]) == (64, 64)  # the processing size
    assert len(thumbs["depth_first"]) == 64 and len(thumbs["depth_first"][0]) == 64
    assert len(thumbs["colour_last"]) == 24 and len(thumbs["colour_last"][0]) == 32
    local = env["tmp"] / "d0.mkv"
    env["s3"].download_file(BUCKET, "film/d0.mkv", str(local))
    assert local.stat().st_size == result["depth_bytes"]
    from stereocrafter.media.depthstore import DepthShape, read_depth

    stored = read_depth(local, DepthShape(SEGMENT_FRAMES, 64, 48, 64, 64))
    assert stored.num_frames == SEGMENT_FRAMES and (stored.low, stored.high) == (stats["min"], stats["max"])
    head = env["s3"].head_object(Bucket=BUCKET, Key="film/d0.mkv")
    assert head["ContentType"] == "video/x-matroska"


def test_a_stored_depth_is_reused_without_a_depth_pass(service: Service, env: dict, long_video: dict) -> None:
    segment, depth_uri = long_video["inputs"][1], f"s3://{BUCKET}/film/d1.mkv"
    service.client.depth(segment, depth_uri)
    before = httpx.get(f"{service.url}/metrics", timeout=5).text
    aligned = {"depth_scale": 1.5, "depth_shift": -0.1, "depth_range": [-0.2, 1.4]}
    reuse = f"s3://{BUCKET}/film/reuse.mp4"
    result = service.client.convert(segment, reuse, depth_uri=depth_uri, report=False, **aligned)
    after = httpx.get(f"{service.url}/metrics", timeout=5).text
    depth_passes = "stereocrafter_stage_seconds_per_frame_count"
    assert metric(after, depth_passes, stage="depth") == metric(before, depth_passes, stage="depth")
    assert (
        metric(after, depth_passes, stage="inpainting")
        == metric(before, depth_passes, stage="inpainting") + 1
    )
    assert "depth" not in result["timings"] and "depth_load" in result["timings"]
    assert result["frames"] == SEGMENT_FRAMES


def test_a_mismatched_or_damaged_depth_is_a_422_and_writes_nothing(service: Service, env: dict,
                                                                   long_video: dict) -> None:  # fmt: skip
    service.client.depth(CLIP, f"s3://{BUCKET}/film/clip_depth.mkv")  # 10 frames, not 8
    env["s3"].put_object(Bucket=BUCKET, Key="film/garbage.mkv", Body=b"\x1aE\xdf\xa3" + b"\x00" * 500)
    segment = long_video["inputs"][2]
    for depth_key, code in [("film/clip_depth.mkv", "depth_mismatch"), ("film/garbage.mkv", "invalid_depth")]:
        out_key = f"film/never_{code}.mp4"
        response = service.post(json.dumps({"s3_input_uri": segment, "s3_output_uri": f"s3://{BUCKET}/{out_key}",
                                            "depth_uri": f"s3://{BUCKET}/{depth_key}"}))  # fmt: skip
        assert response.status_code == 422 and response.json()["error"] == code, response.text
        assert "Traceback" not in response.text
        assert "Contents" not in env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=out_key)
    missing = service.post(json.dumps({"s3_input_uri": segment, "s3_output_uri": f"s3://{BUCKET}/film/x.mp4",
                                       "depth_uri": f"s3://{BUCKET}/film/none.mkv"}))  # fmt: skip
    assert missing.status_code == 404
    assert service.healthy()


def test_a_crafted_depth_is_refused_before_it_is_decoded(service: Service, env: dict) -> None:
    """100 flat 4096x4096 16-bit frames (5 MB in S3, 3.4 GB decoded) tagged for this 96x64,
    8-frame segment: a 422 from the stream's header, and the service's memory stays flat (the
    reader before this decoded 9 frames, 300 MB, before it looked)."""
    from stereocrafter.testing.media import depth_bomb

    segment = make_video(env["tmp"] / "small.mp4", scene_frames(8, 96, 64), fps=24)
    env["s3"].upload_file(str(segment), BUCKET, "bomb/segment.mp4")
    tag = {"version": 1, "low": 0.0, "high": 1.0, "frames": 8, "source_width": 96, "source_height": 64}
    bomb = depth_bomb(env["tmp"] / "bomb.mkv", 100, 4096, tag)
    env["s3"].upload_file(str(bomb), BUCKET, "bomb/depth.mkv")
    request = {"s3_input_uri": f"s3://{BUCKET}/bomb/segment.mp4", "s3_output_uri": f"s3://{BUCKET}/bomb/out.mp4",
               "depth_uri": f"s3://{BUCKET}/bomb/depth.mkv"}  # fmt: skip
    with PeakGrowth([p.pid for p in tree(service.process.pid)]) as growth:
        response = service.post(json.dumps(request))
    assert response.status_code == 422, response.text
    assert response.json()["error"] in ("depth_mismatch", "invalid_depth") and "4096x4096" in response.text
    print(f"crafted depth refused: peak resident memory rose by {growth.mb:.1f} MB")
    assert growth.mb < 256, f"the service's resident memory rose by {growth.mb:.0f} MB"
    assert nothing_at(env, "bomb/out") and service.healthy()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "depth", "s3_input_uri": CLIP}, "needs depth_output_uri"),
        ({"task": "depth", "s3_input_uri": CLIP, "depth_output_uri": CLIP}, "names the input object"),
        ({"task": "depth", "s3_input_uri": CLIP, "depth_output_uri": "s3://videos/d.mkv", "mode": "sbs"},
         "does not apply to the depth task"),
        ({"task": "both", "s3_input_uri": CLIP, "s3_output_uri": OUT}, "task"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_output_uri": "s3://videos/d.mkv"},
         "does not apply to the stereo task"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_scale": 0}, "depth_scale"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_range": [1, 0]}, "low < high"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_range": [0]}, "depth_range"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_uri": OUT}, "depth_uri names"),
    ],
)  # fmt: skip
def test_bad_long_video_fields_are_400(service: Service, fields: dict, message: str) -> None:
    response = service.post(json.dumps(fields))
    assert response.status_code == 400 and message in response.json()["message"], response.text


def test_convert_segments_through_the_real_service_then_stitch(service: Service, env: dict,
                                                                long_video: dict) -> None:  # fmt: skip
    from stereocrafter.client import HttpClient, convert_segments
    from stereocrafter.media.stitch import stitch

    class FirstCallDropped(HttpClient):
        """Segment 1's first depth request meets a dead port (no answer): retried."""

        def __init__(self, url: str) -> None:
            super().__init__(url, timeout=600)
            self.dropped = False

        def depth(self, input_uri: str, depth_output_uri: str, **options: object) -> dict:
            if input_uri.endswith("in_1.mp4") and not self.dropped:
                self.dropped = True
                return HttpClient("http://127.0.0.1:9", timeout=2).depth(input_uri, depth_output_uri)
            return super().depth(input_uri, depth_output_uri, **options)

    inputs = long_video["inputs"]
    pairs = [(uri, f"s3://{BUCKET}/film/out_{i}.mp4") for i, uri in enumerate(inputs)]
    pairs.append(("s3://videos/in/notes.mp4", f"s3://{BUCKET}/film/out_bad.mp4"))  # not a video: 422
    backend = FirstCallDropped(service.url)
    result = convert_segments(pairs, backend, mode="sbs", max_concurrency=2, backoff=0.05, report=False)
    assert result.failed == [4]
    bad = result.segments[4]
    assert bad.stage == "depth" and bad.error_code == "invalid_video" and bad.attempts == {"depth": 1}
    assert result.segments[1].attempts == {"depth": 2, "stereo": 1}
    assert all(o.ok for o in result.segments[:4]) and result.alignment.segments[4] is None
    for i, outcome in enumerate(result.segments[:4]):
        assert outcome.result is not None and outcome.result["frames"] == SEGMENT_FRAMES
        assert outcome.depth_uri == f"s3://{BUCKET}/film/out_{i}.mp4.depth.mkv"
        assert "depth" not in outcome.result["timings"]  # the stored depth, no second pass
    parts = []
    for i in range(4):
        parts.append(env["tmp"] / f"film_out_{i}.mp4")
        env["s3"].download_file(BUCKET, f"film/out_{i}.mp4", str(parts[-1]))
    stitched = stitch(parts, env["tmp"] / "film_sbs.mp4", audio_from=long_video["source"])
    info = probe(env["tmp"] / "film_sbs.mp4")
    assert stitched.frames == info.num_frames == 4 * SEGMENT_FRAMES and (info.width, info.height) == (128, 48)
    assert stitched.audio == "aac copied" and info.has_audio
    assert service.healthy()


@pytest.mark.slow  # four convert_segments runs over 4 segments: 30 s (tests/serving/test_http checks reuse)
def test_a_rerun_reuses_what_is_done_and_redoes_only_what_changed(service: Service, env: dict,
                                                                  long_video: dict) -> None:  # fmt: skip
    """convert_segments twice: the second run reuses every depth and stereo output (each record
    beside its object; even with overwrite false, which would be a 409 otherwise) and writes
    nothing. Then one segment's input changes: its depth is redone, and the stereo task of that
    segment and of every segment whose alignment fields changed with it, nothing else."""
    from stereocrafter.client import HttpClient, convert_segments

    s3 = env["s3"]
    inputs = []
    for i in range(4):  # its own copies: segment 2's input is replaced below
        s3.copy_object(
            Bucket=BUCKET, Key=f"again/in_{i}.mp4", CopySource={"Bucket": BUCKET, "Key": f"film/in_{i}.mp4"}
        )
        inputs.append(f"s3://{BUCKET}/again/in_{i}.mp4")
    pairs = [(uri, f"s3://{BUCKET}/again/out_{i}.mp4") for i, uri in enumerate(inputs)]
    client = HttpClient(service.url, timeout=600)

    def etags() -> list[str]:
        return [s3.head_object(Bucket=BUCKET, Key=f"again/out_{i}.mp4")["ETag"] for i in range(4)]

    first = convert_segments(pairs, client, mode="sbs", max_concurrency=2, report=False)
    assert not first.failed and first.reused == {"depth": 0, "stereo": 0}
    made = etags()
    record = json.loads(s3.get_object(Bucket=BUCKET, Key="again/out_0.mp4.record.json")["Body"].read())
    assert (
        record["recipe"]["inputs"]["depth"]["uri"] == first.segments[0].depth_uri
        and record["answer"]["frames"]
    )

    second = convert_segments(pairs, client, mode="sbs", max_concurrency=2, report=False, overwrite=False)
    assert not second.failed and second.reused == {"depth": 4, "stereo": 4} and etags() == made
    assert all(
        s.result is not None and s.result["reused"] and s.result["gpu_seconds"] < 5 for s in second.segments
    )
    this_run = ("request_id", "started_at", "finished_at", "timings", "gpu_seconds", "cost", "reused", "slot",
                "device", "made_gpu_seconds", "made_cost")  # fmt: skip
    given, recorded = second.segments[1].result, first.segments[1].result
    assert given is not None and recorded is not None
    # what the output took when it was made stays known: the film's cost counts it
    assert (given["made_gpu_seconds"], given["made_cost"]) == (recorded["gpu_seconds"], recorded["cost"])
    assert second.film_gpu_seconds == first.film_gpu_seconds > second.gpu_seconds
    assert {k: v for k, v in given.items() if k not in this_run} == {
        k: v for k, v in recorded.items() if k not in this_run
    }

    changed = make_video(env["tmp"] / "again_2.mp4", scene_frames(SEGMENT_FRAMES, 64, 48, seed=77), fps=24)
    s3.upload_file(str(changed), BUCKET, "again/in_2.mp4")
    third = convert_segments(pairs, client, mode="sbs", max_concurrency=2, report=False)
    assert not third.failed
    moved = {i for i in range(4) if third.alignment.request_fields(i) != second.alignment.request_fields(i)}
    assert [s.reused for s in third.segments] == [
        [] if i == 2 else ["depth"] if i in moved else ["depth", "stereo"] for i in range(4)
    ]
    now = etags()
    assert [now[i] != made[i] for i in range(4)] == [i == 2 or i in moved for i in range(4)]

    # The film now made of outputs from two runs is the film one uninterrupted run makes, on a busy
    # machine: every decoded frame of every segment the same.
    from tests.support.busy import busy_cpus

    fresh = [(uri, f"s3://{BUCKET}/again/fresh_{i}.mp4") for i, uri in enumerate(inputs)]
    with busy_cpus():
        whole = convert_segments(fresh, client, mode="sbs", max_concurrency=2, report=False, reuse=False)
    assert not whole.failed and whole.reused == {"depth": 0, "stereo": 0}
    for i in range(4):
        pair = []
        for name in (f"out_{i}", f"fresh_{i}"):
            s3.download_file(BUCKET, f"again/{name}.mp4", str(env["tmp"] / f"again_{name}.mp4"))
            pair.append(np.concatenate(list(iter_frames(env["tmp"] / f"again_{name}.mp4", 16))))
        assert np.array_equal(*pair), f"segment {i} differs between the resumed and the uninterrupted film"
    assert service.healthy()


@pytest.mark.slow  # two transform passes over 6 segments on the real service: about 70 s
def test_a_film_through_batch_transform_with_the_local_driver(service: Service, env: dict) -> None:
    """What Batch Transform does, on this machine: the manifests in moto's S3, /execution-parameters
    asked, each line POSTed with that concurrency, .out objects written; a depth job, the alignment,
    a stereo job; every segment converted, aligned and stitchable into one tagged file. The same
    jobs run again answer from the records (reuse) and change no output."""
    from containerize.batch import LocalTransform
    from stereocrafter.long.batch import convert_segments_batch
    from stereocrafter.media.stereotag import read_layout
    from stereocrafter.media.stitch import stitch

    s3, tmp = env["s3"], env["tmp"]
    frames = scene_frames(6 * SEGMENT_FRAMES, 64, 48, seed=21)
    pairs = []
    for i in range(6):
        part = make_video(
            tmp / f"batch_in_{i}.mp4", frames[i * SEGMENT_FRAMES : (i + 1) * SEGMENT_FRAMES], fps=24
        )
        s3.upload_file(str(part), BUCKET, f"batch/in_{i}.mp4")
        pairs.append((f"s3://{BUCKET}/batch/in_{i}.mp4", f"s3://{BUCKET}/batch/out_{i}.mp4"))
    engine = LocalTransform(s3, f"s3://{BUCKET}/batch/jobs/", service.url)
    assert engine.concurrency == 1 and engine.files == 1  # one slot: one part per job
    result = convert_segments_batch(pairs, engine, name="film", mode="sbs", report=False)
    assert not result.failed and not engine.failures and result.reused == {"depth": 0, "stereo": 0}
    assert all(s.depth is not None and s.result is not None for s in result.segments)
    assert [
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="batch/jobs/film-stereo/out/")["Contents"]
    ] == ["batch/jobs/film-stereo/out/part-0000.jsonl.out"]
    for i, outcome in enumerate(result.segments):
        assert outcome.result is not None and outcome.result["frames"] == SEGMENT_FRAMES
        assert outcome.result["stereo_tag"] == "st3d left_right"
        assert "depth" not in outcome.result["timings"]  # the stored, aligned depth
        assert result.alignment.request_fields(i)["depth_range"] is not None
    parts = []
    for i in range(6):
        parts.append(tmp / f"batch_out_{i}.mp4")
        s3.download_file(BUCKET, f"batch/out_{i}.mp4", str(parts[-1]))
    stitched = stitch(parts, tmp / "batch_film.mp4")
    assert stitched.frames == 6 * SEGMENT_FRAMES and read_layout(stitched.output) == "left_right"

    again = convert_segments_batch(pairs, engine, name="film-again", mode="sbs", report=False)
    assert again.reused == {"depth": 6, "stereo": 6} and not again.failed
    assert service.healthy()
