"""The whole service path on one machine: ``python -m stereocrafter.demo [DIR]`` (``make demo``).

Starts the local stack (``testing.stack.local_stack``: moto's S3 server on 127.0.0.1 and the real
service, ``bentoml serve``, on TINY RANDOM weights), uploads a generated sample clip, posts
``/invocations`` through the Python client, and prints where the stereo video went and what it is.
Nothing leaves the machine. The weights are random: the output shows the plumbing, not a
conversion. Needs the dev dependencies (moto).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, nargs="?", default=Path("demo"))
    parser.add_argument("--mode", default="sbs")
    args = parser.parse_args(argv)

    import httpx

    from stereocrafter.media.video_io import probe
    from stereocrafter.testing.stack import local_stack
    from stereocrafter.testing.weights import write_sample_clip

    work = args.directory.resolve()
    work.mkdir(parents=True, exist_ok=True)
    clip = write_sample_clip(work / "sample.mp4", frames=24, width=256, height=144)
    # 2 diffusion steps per stage instead of 8: random weights, so only the plumbing matters here
    with local_stack(work, bucket="demo-videos") as stack:
        source = stack.upload(clip, "in/sample.mp4")
        print(f"moto S3 on {stack.moto.url}: uploaded {source}")
        url = stack.service.url
        print(f"service on {url}: /ping 200")
        started = time.perf_counter()
        key = f"out/sample_{args.mode}.mp4"
        result = stack.service.client.convert(source, f"s3://{stack.bucket}/{key}", mode=args.mode)
        print(f"POST /invocations -> 200 in {time.perf_counter() - started:.1f} s: {result}")
        local = work / f"sample_{args.mode}.mp4"
        stack.s3.download_file(stack.bucket, key, str(local))
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


if __name__ == "__main__":
    sys.exit(main())
