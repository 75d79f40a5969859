"""The whole service path on one machine: ``python -m stereocrafter.demo [DIR]`` (``make demo``).

Starts moto's S3 server on 127.0.0.1, uploads a generated sample clip, starts the real service
(``bentoml serve``) on TINY RANDOM weights, posts ``/invocations`` through the Python client, and
prints where the stereo video went and what it is. Nothing leaves the machine. The weights are
random: the output shows the plumbing, not a conversion. Needs the dev dependencies (moto).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, nargs="?", default=Path("demo"))
    parser.add_argument("--mode", default="sbs")
    args = parser.parse_args(argv)

    import boto3
    import httpx
    from moto.server import ThreadedMotoServer

    from stereocrafter.client import HttpClient
    from stereocrafter.media.video_io import probe
    from stereocrafter.stages.components import TINY_WEIGHTS_MARKER
    from stereocrafter.testing.weights import make_tiny_weights, write_sample_clip

    work = args.directory.resolve()
    work.mkdir(parents=True, exist_ok=True)
    weights = work / "tiny-weights"
    if not (weights / TINY_WEIGHTS_MARKER).is_file():
        make_tiny_weights(weights)
    clip = write_sample_clip(work / "sample.mp4", frames=24, width=256, height=144)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines

    credentials = {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(credentials)
    moto_port, service_port = _free_port(), _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    s3_url = f"http://127.0.0.1:{moto_port}"
    s3 = boto3.client("s3", endpoint_url=s3_url)
    s3.create_bucket(Bucket="demo-videos")
    s3.upload_file(str(clip), "demo-videos", "in/sample.mp4")
    print(f"moto S3 on {s3_url}: uploaded s3://demo-videos/in/sample.mp4")

    env = {
        **os.environ,
        **credentials,
        "AWS_ENDPOINT_URL": s3_url,
        "WEIGHTS_DIR": str(weights),
        "STEREOCRAFTER_DEVICE": "cpu",
        # 2 diffusion steps per stage instead of 8: random weights, so only the plumbing matters here
        "STEREOCRAFTER_DEPTH_STEPS": "2",
        "STEREOCRAFTER_INPAINT_STEPS": "2",
        "BENTOML_DO_NOT_TRACK": "true",
    }
    env.pop("HF_TOKEN_ARN", None)
    log = work / "service.log"
    bentoml = str(Path(sys.executable).parent / "bentoml")
    command = [bentoml, "serve", "service:StereoCrafter", "--host", "127.0.0.1", "--port", str(service_port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{service_port}"
    try:
        client = HttpClient(url, timeout=1800)
        deadline = time.monotonic() + 300
        while not client.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                print(f"the service did not come up; see {log}")
                return 1
            time.sleep(0.5)
        print(f"service on {url}: /ping 200")
        started = time.perf_counter()
        result = client.convert(
            "s3://demo-videos/in/sample.mp4", f"s3://demo-videos/out/sample_{args.mode}.mp4", mode=args.mode
        )
        print(f"POST /invocations -> 200 in {time.perf_counter() - started:.1f} s: {result}")
        local = work / f"sample_{args.mode}.mp4"
        s3.download_file("demo-videos", f"out/sample_{args.mode}.mp4", str(local))
        info = probe(local)
        print(
            f"output {result['s3_output_uri']} (copied to {local}): {info.width}x{info.height}, "
            f"{info.num_frames} frames at {info.fps} fps, codec {info.codec}"
        )
        metrics = httpx.get(f"{url}/metrics", timeout=5).text.splitlines()
        counters = [line for line in metrics if line.startswith("bentoml_service_request_total")]
        print(f"/metrics: {len(counters)} request counters, e.g. {counters[0] if counters else 'none'}")
        print("NOTE: TINY RANDOM WEIGHTS: depth and inpainting are noise; this shows the service path only.")
        return 0
    finally:
        process.terminate()
        process.wait(timeout=30)
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
