"""Build and deploy CLI (the Nx targets call it): CodeBuild image build, SageMaker, GPU EC2 via SSM.

    python -m containerize.deploy [--env-file .env] build      [--source-version SHA]
    python -m containerize.deploy [--env-file .env] sagemaker  [--image-tag SHA] [--async ...]
    python -m containerize.deploy [--env-file .env] ec2        [--image-tag SHA]
    python -m containerize.deploy [--env-file .env] batch      --segments FILE --work s3://... [...]
    python -m containerize.deploy [--env-file .env] weights-mirror --to s3://bucket/weights/ [--presets P]

One module per target (``codebuild``, ``sagemaker``, ``ec2``, ``batch``, ``weights_mirror``) over the
shared helpers of ``aws``; this module is the command line. Configuration comes from the ``.env``
written by the infrastructure project's ``terraform-output`` target (values already in the environment win, as
with Nx's envFile). A missing key is an error that names it. Exit status: 0 done, 1 the AWS side
failed (build failed, endpoint rolled back, command failed), 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from containerize import batch, codebuild, cuda, ec2, sagemaker, weights_mirror
from containerize.aws import ConfigError, DeployError, read_env_file


def main(argv: list[str] | None = None, *, clients: Callable[[str, str], Any] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m containerize.deploy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--env-file", type=Path, help="the .env written by terraform-output")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="CodeBuild: build the image for this commit and push it to ECR")
    b.add_argument("--source-version", help="commit SHA (default: git HEAD)")
    s = commands.add_parser("sagemaker", help="new model + endpoint config, then create/update the endpoint")
    s.add_argument("--image-tag", help="image tag (default: the git SHA the build pushed)")
    s.add_argument("--async", dest="async_output", metavar="S3_OUTPUT_PATH", help="asynchronous inference")
    s.add_argument("--async-failure-path")
    s.add_argument("--success-topic")
    s.add_argument("--error-topic")
    s.add_argument("--autoscale-max", type=int, default=0)
    s.add_argument(
        "--max-concurrent-invocations",
        type=int,
        help="async requests per instance at once (default: its GPUs)",
    )
    s.add_argument(
        "--startup-timeout", type=int, default=1800, help="seconds for weight download + load (60-3600)"
    )
    presets_help = "presets the endpoint serves, e.g. turbo (default: .env STEREOCRAFTER_PRESETS, else all)"
    s.add_argument("--presets", help=presets_help)
    s.add_argument("--volume-gb", type=int, help="EBS volume for the weights (1-512)")
    s.add_argument(
        "--ami",
        help=f"InferenceAmiVersion (default: .env SAGEMAKER_INFERENCE_AMI, else {cuda.DEFAULT_AMI})",
    )
    mirror_help = (
        "s3://bucket/prefix/ written by weights-mirror: the weights as model data (no token, no internet)"
    )
    s.add_argument("--weights-s3", help=mirror_help)
    s.add_argument("--keep", type=int, default=2, help="old models/configs to keep for rollback")
    s.add_argument("--wait-delay", type=int, default=30)
    s.add_argument("--wait-attempts", type=int, default=120)
    e = commands.add_parser("ec2", help="roll the GPU EC2 host to the new image through SSM")
    e.add_argument("--image-tag")
    e.add_argument("--presets", help=presets_help)
    e.add_argument("--weights-s3", help=mirror_help)
    w = commands.add_parser(
        "weights-mirror", help="copy the pinned, verified weight files from Hugging Face to an S3 prefix"
    )
    w.add_argument("--to", required=True, help="s3://bucket/prefix/ (what --weights-s3 names later)")
    w.add_argument(
        "--presets", help="the presets whose models to mirror (default: .env STEREOCRAFTER_PRESETS, else all)"
    )
    w.add_argument("--manifest", type=Path, help="a weights manifest replacing the published one")
    w.add_argument("--staging", type=Path, help="a local folder kept between runs (default: a temporary one)")
    t = commands.add_parser(
        "batch", help="a film through two Batch Transform jobs (depth, stereo), no endpoint"
    )
    t.add_argument(
        "--segments", type=Path, required=True, help='JSON lines {"s3_input_uri", "s3_output_uri"}'
    )
    t.add_argument("--work", required=True, help="s3:// prefix for the manifests and the jobs' answers")
    t.add_argument("--instance-type", help="default: .env SAGEMAKER_INSTANCE_TYPE")
    t.add_argument("--instance-count", type=int, default=1)
    t.add_argument("--max-concurrent", type=int, help="requests per instance at once (default: its GPUs)")
    t.add_argument("--ami", help="TransformAmiVersion (GPU instances; see --ami-driver)")
    t.add_argument("--ami-driver", type=int, help="the NVIDIA driver branch of an --ami not listed yet")
    t.add_argument("--mode", default="sbs")
    t.add_argument("--preset", help="the preset every segment is converted with (default: the image's)")
    t.add_argument("--presets", help=presets_help)
    t.add_argument("--image-tag")
    t.add_argument(
        "--timeout", type=int, default=batch.DEFAULT_TIMEOUT_S, help="seconds per request (1-3600)"
    )
    t.add_argument("--wait-delay", type=int, default=30)
    t.add_argument("--wait-attempts", type=int, default=480)
    args = parser.parse_args(argv)
    targets = {"build": codebuild.run, "sagemaker": sagemaker.run, "ec2": ec2.run, "batch": batch.run,
               "weights-mirror": weights_mirror.run}  # fmt: skip
    try:
        config = read_env_file(args.env_file)
        make = clients or (lambda name, region: __import__("boto3").client(name, region_name=region))
        targets[args.command](args, config, make)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DeployError as err:
        print(f"failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
