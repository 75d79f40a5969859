"""/ping latency while the real service converts: does anything at a job's edges stall the event loop?

Starts moto's S3 on 127.0.0.1, the real ``bentoml serve`` on TINY RANDOM weights (CPU), runs
``--jobs`` conversions one after another while another thread GETs /ping every 20 ms on one
keep-alive connection, then prints the latency distribution and where the slow samples fell
relative to the jobs' start and end. Nothing leaves the machine.

    python -m bench.ping_latency              # 12 jobs of a 24-frame 256x144 clip
    python -m bench.ping_latency --smoke      # 2 jobs: checks the script itself
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--slow-ms", type=float, default=100.0, help="what counts as a slow /ping")
    args = parser.parse_args()
    jobs = 2 if args.smoke else args.jobs

    from stereocrafter.testing.stack import local_stack
    from stereocrafter.testing.weights import write_sample_clip

    work = Path(tempfile.mkdtemp(prefix="ping-bench-"))
    clip = write_sample_clip(work / "clip.mp4", frames=12 if args.smoke else 24, width=256, height=144)
    steps = {"STEREOCRAFTER_DEPTH_STEPS": "1", "STEREOCRAFTER_INPAINT_STEPS": "1"}
    with local_stack(work, bucket="bench", env=steps) as stack:
        source = stack.upload(clip, "in.mp4")
        url, client = stack.service.url, stack.service.client
        samples: list[tuple[float, float]] = []  # (epoch time at send, seconds)
        stop = threading.Event()

        def sample() -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    sent, started = time.time(), time.perf_counter()
                    http.get(f"{url}/ping").raise_for_status()
                    samples.append((sent, time.perf_counter() - started))
                    time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        time.sleep(1.0)
        edges: list[float] = []
        for i in range(jobs):
            result = client.convert(source, f"s3://bench/out{i}.mp4", mode="sbs")
            edges += [result["started_at"], result["finished_at"]]
            time.sleep(0.3)
        time.sleep(1.0)
        stop.set()
        sampler.join()

    latencies = sorted(s for _, s in samples)
    slow = [(t, s) for t, s in samples if s * 1000 > args.slow_ms]
    near_edge = [1 for t, s in slow if min(abs(t + s / 2 - e) for e in edges) < 0.5]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"{jobs} jobs, {len(samples)} /ping samples during and between them (TINY RANDOM WEIGHTS, CPU)")
    print(f"/ping latency: median {statistics.median(latencies) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
          f"max {latencies[-1] * 1e3:.1f} ms")  # fmt: skip
    print(f"samples over {args.slow_ms:.0f} ms: {len(slow)}, "
          f"of which {len(near_edge)} within 0.5 s of a job's start or end")  # fmt: skip


if __name__ == "__main__":
    main()
