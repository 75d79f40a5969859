"""`make image-smoke`: start the built image as SageMaker would and convert one segment with it.

No container engine runs here (podman's crun cannot set rlimits in this sandbox), so the image's
own filesystem is started with `buildah run --isolation chroot` (the host's network): its
entrypoint with `serve`, as the image's non-root user, with the image's environment. Checks:

1. WEIGHTS_DIR is writable as that user (SageMaker mounts /opt/ml/model; the start-up download
   writes there): tiny random weights are written into it by that user, inside the image; and no
   build tool (gcc, g++, make, git) is left in the image;
2. GET /ping on port 8080 answers 200;
3. POST /invocations converts a generated clip from moto's S3 server (on the host) and the stereo
   video lands in S3.

Before them, step 0 (``TORCH_CHECK``, no GPU needed): the image's torch is the CUDA build that
``containerize/cuda.py`` reads from the image's pins (``torch.version.cuda`` against
``cuda.image_cuda()``), and cuBLAS and cuDNN, the libraries every model call goes through, load
inside the image (cuDNN reports its version). A CPU wheel, or one for another CUDA, would pass the
rest of this smoke on the CPU and fail only on the GPU instance, where the AMI check assumed it.

The device is overridden to the CPU (STEREOCRAFTER_DEVICE=cpu): the image's torch is the CUDA build,
which runs on the CPU too. Prints each step's time; exit status 0 only if all four pass.

    python -m containerize.image_smoke [--image stereocrafter:local]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from stereocrafter.client import HttpClient
from stereocrafter.media.video_io import probe
from stereocrafter.settings import DEFAULT_WEIGHTS_DIR
from stereocrafter.testing.weights import write_sample_clip

PORT = 8080
WEIGHTS = DEFAULT_WEIGHTS_DIR  # SageMaker's model volume

# Run by the image's Python (``python -c``; the image holds no ``containerize``), with the CUDA
# version its pins name in place of {want}: one line per finding, exit status 1 on a problem.
TORCH_CHECK = """
import ctypes, glob, os, site, sys
import torch
want, got = "{want}", torch.version.cuda
if got is None:
    sys.exit(f"torch {{torch.__version__}} is the CPU build (torch.version.cuda is None); "
             f"the image's pins name CUDA {{want}} (containerize/cuda.py)")
if got.split(".")[:2] != want.split("."):
    sys.exit(f"torch {{torch.__version__}} is built for CUDA {{got}}; the image's pins name CUDA {{want}}")
print(f"torch {{torch.__version__}}: CUDA {{got}}")
problems = []
for name in ("cublas", "cudnn"):
    pattern = os.path.join("nvidia", "**", f"lib{{name}}.so*")
    found = sorted({{p for root in site.getsitepackages()
                     for p in glob.glob(os.path.join(root, pattern), recursive=True)}})
    if not found:
        problems.append(f"lib{{name}}.so is not in the image (no nvidia wheel carries it)")
        continue
    try:
        ctypes.CDLL(found[0])
        print(f"{{name}}: {{found[0]}} loads")
    except OSError as err:
        problems.append(f"{{found[0]}} does not load: {{err}}")
version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
if version is None:
    problems.append("torch cannot use cuDNN (torch.backends.cudnn.version() is None)")
else:
    print(f"cuDNN {{version}} through torch")
sys.exit("; ".join(problems) or None)
"""


def torch_check(want: tuple[int, int]) -> str:
    """``TORCH_CHECK`` for an image whose pins name CUDA ``want`` (``cuda.image_cuda()``)."""
    return TORCH_CHECK.format(want=".".join(map(str, want)))


def buildah(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STORAGE_DRIVER": os.environ.get("STORAGE_DRIVER", "vfs")}
    return subprocess.run(["buildah", *args], check=True, text=True, capture_output=True, env=env, **kwargs)  # type: ignore[call-overload,no-any-return]


def stop_inside(server: subprocess.Popen[bytes]) -> None:
    """Stop every process of the image's server: BentoML's workers run in their own sessions and
    outlive the arbiter that `buildah run` started. They are found as processes in another mount
    namespace than this one that run the Bento (/home/bentoml/bento on their command line)."""
    import signal

    server.terminate()
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        inside = [pid for pid in _pids() if _in_image(pid)]
        for pid in inside:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while inside and time.monotonic() < deadline:
            inside = [pid for pid in inside if Path(f"/proc/{pid}").exists()]
            time.sleep(0.2)
        if not inside:
            break
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _in_image(pid: int) -> bool:
    try:
        other_namespace = os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        return other_namespace and b"/home/bentoml/bento" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default=os.environ.get("IMAGE_TAG", "stereocrafter:local"))
    args = parser.parse_args()
    from stereocrafter.testing.stack import MotoServer

    moto = MotoServer().__enter__()  # the local stack's moto, on the host; the service is the image's
    moto_url = moto.url
    container = buildah("from", "--pull-never", args.image).stdout.strip()
    user = json.loads(buildah("inspect", "--type", "container", container).stdout)["OCIv1"]["config"]["User"]
    log = Path(tempfile.mkdtemp()) / "serve.log"
    server = None
    try:
        started = time.monotonic()
        write_weights = (
            f"from stereocrafter.testing.weights import make_tiny_weights; make_tiny_weights({WEIGHTS!r}); "
            f"import os; print('written as uid', os.getuid(), 'into', {WEIGHTS!r})"
        )
        source = "/home/bentoml/bento/src"  # the Bento's code in the image
        run = ["run", "--isolation", "chroot", "--user", user, "--workingdir", source, container, "--"]
        from containerize.cuda import image_cuda

        try:
            checked = buildah(*run, "python", "-c", torch_check(image_cuda()))
        except subprocess.CalledProcessError as err:
            raise SystemExit(f"image smoke: FAILED (the image's torch: {err.stderr.strip()})") from None
        print(f"0. {'; '.join(checked.stdout.strip().splitlines())} ({time.monotonic() - started:.1f} s)")
        made = buildah(*run, "python", "-c", write_weights)
        tools = buildah(*run, "sh", "-c", "for t in gcc g++ make git; do command -v $t || true; done").stdout
        if tools.strip():
            raise SystemExit(f"build tools left in the image: {tools.split()}")
        print(
            f"1. WEIGHTS_DIR writable as {user!r}: {made.stdout.strip()} ({time.monotonic() - started:.1f} s)"
        )

        env = ["STEREOCRAFTER_DEVICE=cpu", f"AWS_ENDPOINT_URL={moto_url}", "AWS_ACCESS_KEY_ID=smoke",
               "AWS_SECRET_ACCESS_KEY=smoke", "AWS_DEFAULT_REGION=us-east-1", "STEREOCRAFTER_DEPTH_STEPS=2",
               "STEREOCRAFTER_INPAINT_STEPS=2"]  # fmt: skip
        command = ["buildah", "run", "--isolation", "chroot", "--user", user]
        for item in env:
            command += ["--env", item]
        command += [container, "--", "./env/docker/entrypoint.sh", "serve"]
        started = time.monotonic()
        server = subprocess.Popen(
            command,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "STORAGE_DRIVER": os.environ.get("STORAGE_DRIVER", "vfs")},
        )
        client = HttpClient(f"http://127.0.0.1:{PORT}", timeout=600)
        while not client.ping():
            if server.poll() is not None or time.monotonic() - started > 300:
                print(log.read_text()[-3000:])
                raise SystemExit("the image's server never answered /ping with 200")
            time.sleep(1)
        print(f"2. GET /ping on {PORT}: 200 after {time.monotonic() - started:.1f} s")

        s3: Any = moto.client("s3")
        s3.create_bucket(Bucket="smoke")
        clip = write_sample_clip(Path(tempfile.mkdtemp()) / "clip.mp4", frames=12, width=128, height=72)
        s3.upload_file(str(clip), "smoke", "in/clip.mp4")
        started = time.monotonic()
        result = client.convert("s3://smoke/in/clip.mp4", "s3://smoke/out/clip_sbs.mp4", mode="sbs")
        local = Path(tempfile.mkdtemp()) / "out.mp4"
        s3.download_file("smoke", "out/clip_sbs.mp4", str(local))
        info = probe(local)
        assert (info.num_frames, info.width, info.height) == (12, 256, 72), info
        size = f"{result['width']}x{result['height']}"
        print(f"3. POST /invocations: {result['frames']} frames {size} in S3, "
              f"tiny_weights={result['tiny_weights']} ({time.monotonic() - started:.1f} s)")  # fmt: skip
        print("image smoke: PASSED")
        return 0
    finally:
        if server is not None:
            stop_inside(server)
        buildah("rm", container)
        moto.__exit__()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except httpx.HTTPError as err:
        sys.exit(f"image smoke: FAILED ({err})")
