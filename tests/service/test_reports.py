"""What a conversion did, through the real service: the report beside the video, and /metrics."""

from __future__ import annotations

import json

import httpx

from stereocrafter.testing.stack import Service
from tests.service.helpers import BUCKET, CLIP, body, metric


def test_metrics_count_invocations(service: Service) -> None:
    assert service.post(body(mode="3d")).status_code == 400
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    assert "bentoml_service_request_total" in text and "/invocations" in text


def test_service_metrics_on_the_real_server(service: Service) -> None:
    before = httpx.get(f"{service.url}/metrics", timeout=5).text
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/metrics.mp4", mode="sbs", report=False)
    assert service.post(body(mode="3d")).status_code == 400
    for _ in range(5):
        assert service.healthy()
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    ok = metric(text, "stereocrafter_jobs_total", outcome="ok", code="")
    assert ok - metric(before, "stereocrafter_jobs_total", outcome="ok", code="") == 1
    bad = metric(text, "stereocrafter_jobs_total", outcome="error", code="bad_request")
    assert bad - metric(before, "stereocrafter_jobs_total", outcome="error", code="bad_request") == 1
    frames = metric(text, "stereocrafter_frames_total") - metric(before, "stereocrafter_frames_total")
    assert frames == result["frames"] == 10
    for stage in ("depth", "splat", "inpainting"):
        assert metric(text, "stereocrafter_stage_seconds_per_frame_count", stage=stage) >= 1
    assert metric(text, "stereocrafter_queue_wait_seconds_count") >= 1
    assert metric(text, "stereocrafter_model_state", state="ready") == 1
    assert metric(text, "stereocrafter_model_state", state="loading") == 0
    # /ping never counts as a job (BentoML's own request counters do: docs/reports-and-metrics.md)
    pings = metric(text, "stereocrafter_jobs_total", outcome="ok", code="") - ok
    assert pings == 0


def test_the_report_lands_beside_the_video(service: Service, env: dict) -> None:
    from PIL import Image

    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/reported.mp4", mode="sbs", preset="fast")
    assert result["report_uris"] == {
        "json": f"s3://{BUCKET}/out/reported.mp4.report.json",
        "png": f"s3://{BUCKET}/out/reported.mp4.report.png",
    }
    assert "report_error" not in result or result["report_error"] is None
    assert result["report"]["hole_ratio"]["mean"] > 0 and "seam_stability" in result["report"]
    s3 = env["s3"]
    heads = {key: s3.head_object(Bucket=BUCKET, Key=f"out/{key}") for key in
             ("reported.mp4", "reported.mp4.report.json", "reported.mp4.report.png")}  # fmt: skip
    assert heads["reported.mp4.report.json"]["LastModified"] >= heads["reported.mp4"]["LastModified"]
    assert heads["reported.mp4.report.json"]["ContentType"] == "application/json"
    data = json.loads(s3.get_object(Bucket=BUCKET, Key="out/reported.mp4.report.json")["Body"].read())
    assert data["preset"] == "fast" and data["tiny_weights"] is True and data["num_frames"] == 10
    # the encoder that wrote the video, named alike in the response, the report and the log; no
    # NVENC here, so auto (the default) fell back to libx264 and says why
    assert result["encoder"]["codec"] == "libx264" and result["encoder"]["requested"] == "auto"
    assert result["encoder"]["crf"] == 18 and result["encoder"]["preset"] == "veryfast"
    assert "h264_nvenc is not usable here" in result["encoder"]["fallback"]
    assert data["encoder"] == result["encoder"]
    video = env["tmp"] / "reported.mp4"
    s3.download_file(BUCKET, "out/reported.mp4", str(video))
    assert b"crf=18.0" in video.read_bytes() and b"subme=2" in video.read_bytes()  # x264 says so itself
    log = service.log_text()
    assert "encoder: libx264 (preset veryfast, CRF 18; auto fell back: h264_nvenc" in log
    assert f"request {result['request_id']} done (fast preset)" in log and "; encoder libx264" in log
    assert [row["frame"] for row in data["frames"]] == list(range(10)) and data["config"]["max_disp"] == 20
    local = env["tmp"] / "report.png"
    s3.download_file(BUCKET, "out/reported.mp4.report.png", str(local))
    with Image.open(local) as sheet:
        assert sheet.format == "PNG" and sheet.size[0] == 2 * 8 + 4 * 240 + 3 * 4


def test_a_failing_report_upload_keeps_the_job_and_its_video(service: Service, env: dict) -> None:
    """An output key of 1016 bytes is valid; its report's key (+ ".report.json") is over S3's 1024."""
    key = "out/" + "k" * 1008 + ".mp4"
    result = service.client.convert(CLIP, f"s3://{BUCKET}/{key}", mode="sbs")
    assert "1024" in result["report_error"] and result["report_uris"] is None
    assert result["report"] is not None  # the figures were computed; only the files are missing
    assert env["s3"].head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    listed = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
    assert [o["Key"] for o in listed] == [key]
