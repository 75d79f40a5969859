"""``sagemaker-batch``: a film converted by SageMaker Batch Transform, with no endpoint up.

    python -m containerize.deploy batch --segments film.jsonl --work s3://bucket/jobs/film/ \\
        [--instance-type ml.g5.xlarge] [--instance-count 4] [--ami NAME --ami-driver 580] ...

``--segments``: one JSON object per line, ``{"s3_input_uri": ..., "s3_output_uri": ...}``, in playback
order. The depth pass and the stereo pass are one transform job each over a JSON-lines manifest
(one /invocations body per line, ``SplitType=Line``, ``BatchStrategy=SingleRecord``), spread over
the instances; the alignment between them runs here (``stereocrafter.long.batch``). Under
``--work``, each job has ``<job>/in/part-NNNN.jsonl`` (the manifest, in parts: Batch Transform
hands whole objects to instances) and ``<job>/out/part-NNNN.jsonl.out`` (one answer per line).

The model serves the preset the film is converted with (``--preset``, else the .env's
``STEREOCRAFTER_PRESET``, else reference) and nothing else unless ``--presets`` says so: an instant
film's instances need no SVD token and load no diffusion UNet. Names are digests, not clocks: the
model's of the film, image and settings, each job's of its manifest and parameters, so the same
command run again finds the job an earlier run started (running: waited for; completed: its
answers read; failed or stopped: a new attempt, ``<job>-2``) instead of starting a second one over
the same outputs. A wait that runs out (``--wait-delay`` x ``--wait-attempts``) stops the job; if
the stop fails, the error says the job still runs and bills, and how to stop it.

Two engines, one S3 layout (``S3Parts``): ``SageMakerTransform`` (CreateTransformJob, then
DescribeTransformJob until it ends) and ``LocalTransform``, which does what Batch Transform does
against a running service (``GET /execution-parameters``, the manifest's lines POSTed to
``/invocations`` with that concurrency, an ``.out`` object per part whose every line answered).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from containerize import cuda
from containerize.aws import (
    NAME_PREFIX,
    ConfigError,
    DeployError,
    ensure_image,
    git_sha,
    require,
    served_presets,
)
from containerize.sagemaker import create_model, gpus_of
from stereocrafter.locations import S3Location
from stereocrafter.long.batch import MAX_PAYLOAD_MB, answers, convert_segments_batch
from stereocrafter.presets import DEFAULT_PRESET
from stereocrafter.settings import Env

KEYS_BATCH = (
    "REGION",
    "SAGEMAKER_ENDPOINT_ROLE_ARN",
    "ECR_STEREOCRAFTER_SAGEMAKER_URL",
    "HF_TOKEN_SECRET_ARN",
)
# SageMaker's limits for a transform job's calls (ModelClientConfig): 1-3600 s per request, 0-3
# retries; a segment of the reference preset takes minutes on one GPU.
MAX_TIMEOUT_S = 3600
DEFAULT_TIMEOUT_S = 3600
TERMINAL = ("Completed", "Failed", "Stopped")


class S3Parts:
    """A job's manifest parts and their answers under ``work`` (an s3:// prefix)."""

    def __init__(self, s3: Any, work: str) -> None:
        loc = S3Location.parse(work.rstrip("/") + "/x")
        self.s3, self.bucket, self.prefix = s3, loc.bucket, loc.key[:-1]

    def uri(self, name: str, side: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}/{side}/"

    def put(self, name: str, parts: list[bytes]) -> None:
        for i, body in enumerate(parts):
            key = f"{self.prefix}{name}/in/part-{i:04d}.jsonl"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/jsonlines")

    def read_in(self, name: str, index: int) -> bytes:
        key = f"{self.prefix}{name}/in/part-{index:04d}.jsonl"
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def write_out(self, name: str, index: int, body: bytes) -> None:
        key = f"{self.prefix}{name}/out/part-{index:04d}.jsonl.out"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def read_out(self, name: str, parts: list[bytes]) -> list[list[dict[str, Any]] | None]:
        got: list[list[dict[str, Any]] | None] = []
        for i, part in enumerate(parts):
            key = f"{self.prefix}{name}/out/part-{i:04d}.jsonl.out"
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                body = None
            got.append(answers(body, part.count(b"\n")))
        return got


class SageMakerTransform:
    """One CreateTransformJob per manifest, watched until it ends; its ``.out`` objects read back."""

    def __init__(
        self, sm: Any, parts: S3Parts, *, model: str, instance_type: str, instance_count: int,
        ami: str | None, concurrency: int, timeout_s: int = DEFAULT_TIMEOUT_S, retries: int = 1,
        wait_delay: int = 30, wait_attempts: int = 480, out: Any = None,
    ) -> None:  # fmt: skip
        self.sm, self.parts, self.model = sm, parts, model
        self.instance_type, self.instance_count, self.ami = instance_type, instance_count, ami
        self.concurrency, self.timeout_s, self.retries = concurrency, timeout_s, retries
        self.wait_delay, self.wait_attempts, self._out = wait_delay, wait_attempts, out
        # at least one part per request in flight on every instance
        self.files = instance_count * concurrency

    @property
    def out(self) -> Any:
        return self._out or sys.stdout

    def request(self, name: str) -> dict[str, Any]:
        """CreateTransformJob's parameters for the manifest under ``name``."""
        resources: dict[str, Any] = {"InstanceType": self.instance_type, "InstanceCount": self.instance_count}
        if self.ami is not None:
            resources["TransformAmiVersion"] = self.ami
        return {
            "TransformJobName": name,
            "ModelName": self.model,
            "MaxConcurrentTransforms": self.concurrency,  # what /execution-parameters answers: one per GPU
            "MaxPayloadInMB": MAX_PAYLOAD_MB,
            "BatchStrategy": "SingleRecord",
            "ModelClientConfig": {
                "InvocationsTimeoutInSeconds": self.timeout_s,
                "InvocationsMaxRetries": self.retries,
            },
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.parts.uri(name, "in")}
                },
                "ContentType": "application/json",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": self.parts.uri(name, "out"),
                "Accept": "application/json",
                "AssembleWith": "Line",
            },
            "TransformResources": resources,
        }

    def job_name(self, name: str, parts: list[bytes]) -> str:
        """``name`` with the digest of everything the job would be created with (its manifest parts
        and its parameters): a rerun of the same work derives the same name and finds the job."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.request(""), sort_keys=True).encode())
        for part in parts:
            digest.update(len(part).to_bytes(8, "big") + part)
        return f"{name}-{digest.hexdigest()[:8]}"

    def _existing(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.sm.describe_transform_job(TransformJobName=name))
        except self.sm.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
                return None  # SageMaker's answer for a job name it does not know
            raise

    def _start(self, name: str, parts: list[bytes]) -> str:
        """The job for this manifest: one of an earlier run still running (or completed, every record
        answered) is taken up again; one that failed or was stopped is followed by ``<name>-2``, ...
        (a job name is never used twice)."""
        base = self.job_name(name, parts)
        for attempt in range(1, 100):
            job_name = base if attempt == 1 else f"{base}-{attempt}"
            found = self._existing(job_name)
            if found is None:
                self.parts.put(job_name, parts)
                self.sm.create_transform_job(**self.request(job_name))
                print(f"{job_name}: transform job started over {len(parts)} manifest parts", file=self.out)
                return job_name
            status = found["TransformJobStatus"]
            if status not in ("Failed", "Stopped"):
                print(f"{job_name}: found {status.lower()} (a run before this one started it); "
                      "waiting for it instead of starting another", file=self.out)  # fmt: skip
                return job_name
        raise DeployError(f"{base}: 99 attempts of this transform job failed or were stopped")

    def transform(self, name: str, parts: list[bytes]) -> list[list[dict[str, Any]] | None]:
        name = self._start(name, parts)
        for _ in range(self.wait_attempts):
            job = self.sm.describe_transform_job(TransformJobName=name)
            if job["TransformJobStatus"] in TERMINAL:
                break
            time.sleep(self.wait_delay)
        else:
            self._stop(name)
        print(f"{name}: {job['TransformJobStatus']}; output: {self.parts.uri(name, 'out')}; failures: "
              f"{job.get('FailureReason') or 'none'} (the log: CloudWatch /aws/sagemaker/TransformJobs, "
              f"streams {name}/...)", file=self.out)  # fmt: skip
        return self.parts.read_out(name, parts)

    def _stop(self, name: str) -> None:
        """The wait ran out: the job is stopped (not left billing), or the error says how to."""
        waited = self.wait_delay * self.wait_attempts
        try:
            self.sm.stop_transform_job(TransformJobName=name)
        except Exception as err:  # the job goes on: say so, and how to stop it
            raise DeployError(
                f"{name} did not finish within {waited} s and could not be stopped ({err}); it is still "
                f"running and billing: `aws sagemaker stop-transform-job --transform-job-name {name}`, or "
                "run the same command again to wait for it (it is found by its name)"
            ) from None
        raise DeployError(
            f"{name} did not finish within {waited} s (--wait-delay x --wait-attempts); it was stopped. "
            "The same command again starts it afresh; segments already converted are reused"
        )


class LocalTransform:
    """What Batch Transform does, against a running service at ``url``: ``GET /execution-parameters``
    once, then each part's lines (read back from S3, each within ``MaxPayloadInMB``) POSTed to
    ``/invocations`` with ``MaxConcurrentTransforms`` requests in flight; a part's ``.out`` is
    written when every line of it answered 200 (as a failed record loses its object's output)."""

    def __init__(self, s3: Any, work: str, url: str, *, timeout_s: float = 600) -> None:
        import httpx

        self.parts, self.url, self.http = S3Parts(s3, work), url.rstrip("/"), httpx.Client(timeout=timeout_s)
        params = self.http.get(f"{self.url}/execution-parameters").json()
        if params.get("BatchStrategy") != "SINGLE_RECORD":
            raise ValueError(
                f"the service asks for {params.get('BatchStrategy')!r}; this driver sends one record"
            )
        self.concurrency, self.max_bytes = (
            int(params["MaxConcurrentTransforms"]),
            int(params["MaxPayloadInMB"]) << 20,
        )
        self.files = self.concurrency
        self.failures: list[str] = []  # what SageMaker would log: the line, its status and body

    def _post(self, name: str, index: int, line: bytes) -> dict[str, Any] | None:
        if len(line) > self.max_bytes:
            self.failures.append(f"{name} part {index}: a record of {len(line)} bytes is over MaxPayloadInMB")
            return None
        answer = self.http.post(
            f"{self.url}/invocations", content=line, headers={"Content-Type": "application/json"}
        )
        if answer.status_code != 200:
            self.failures.append(f"{name} part {index}: {answer.status_code} {answer.text[:300]}")
            return None
        result: dict[str, Any] = answer.json()
        return result

    def transform(self, name: str, parts: list[bytes]) -> list[list[dict[str, Any]] | None]:
        self.parts.put(name, parts)
        lines = [
            (i, line) for i in range(len(parts)) for line in self.parts.read_in(name, i).splitlines() if line
        ]
        with ThreadPoolExecutor(self.concurrency) as pool:
            got = list(pool.map(lambda item: self._post(name, *item), lines))
        for i in range(len(parts)):
            mine = [answer for (part, _), answer in zip(lines, got, strict=True) if part == i]
            if all(answer is not None for answer in mine):
                self.parts.write_out(name, i, b"".join(json.dumps(a).encode() + b"\n" for a in mine))
        return self.parts.read_out(name, parts)


def read_segments(path: Path) -> list[tuple[str, str]]:
    """``--segments``: one ``{"s3_input_uri", "s3_output_uri"}`` object per line, in playback order."""
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            pairs.append((str(item["s3_input_uri"]), str(item["s3_output_uri"])))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f'{path}:{number}: expected {{"s3_input_uri": ..., "s3_output_uri": ...}}'
            ) from None
    if not pairs:
        raise ConfigError(f"{path} names no segment")
    return pairs


def batch_ami(args: argparse.Namespace, instance_type: str) -> str | None:
    """The TransformAmiVersion to send (None on a CPU instance, which has none), checked against the
    image's CUDA: a listed batch AMI, or one AWS has not listed yet, named with its driver."""
    if cuda.family_of(instance_type) not in cuda.FAMILY_ARCH:
        if args.ami:
            raise ConfigError(f"{instance_type} has no GPU: TransformAmiVersion does not apply")
        return None
    amis = dict(cuda.BATCH_AMIS)
    if args.ami and args.ami_driver is not None:
        if args.ami_driver not in cuda.DRIVER_CUDA:
            raise ConfigError(f"--ami-driver {args.ami_driver}: known branches {sorted(cuda.DRIVER_CUDA)}")
        amis[args.ami] = cuda.Ami(args.ami, args.ami_driver, cuda.DRIVER_CUDA[args.ami_driver], "declared")
    if not args.ami:
        raise ConfigError(
            "a transform job needs --ami: SageMaker's listed batch AMIs have drivers 470 and 535 "
            f"({', '.join(cuda.BATCH_AMIS)}), which cannot start this image's CUDA "
            f"{'.'.join(map(str, cuda.image_cuda()))}; name a newer one with --ami NAME --ami-driver 580"
        )
    try:
        return cuda.check_fit(
            cuda.image_cuda(), args.ami, instance_type, amis=amis, field="TransformAmiVersion"
        ).name
    except cuda.MisfitError as err:
        raise ConfigError(str(err)) from None


def _model_exists(sm: Any, name: str) -> bool:
    try:
        sm.describe_model(ModelName=name)
    except sm.exceptions.ClientError:
        return False
    return True


def run(args: argparse.Namespace, config: Mapping[str, str], make: Callable[[str, str], Any]) -> None:
    """The ``batch`` command: the AMI checked, the image in ECR, a model, then the two transform jobs
    through ``convert_segments_batch``; a segment that failed makes it exit 1, named with why."""
    c = require(config, KEYS_BATCH)
    instance_type = args.instance_type or config.get("SAGEMAKER_INSTANCE_TYPE")
    if not instance_type:
        raise ConfigError("--instance-type or SAGEMAKER_INSTANCE_TYPE in the .env is needed")
    if args.instance_count < 1 or not 1 <= args.timeout <= MAX_TIMEOUT_S:
        raise ConfigError(f"--instance-count must be >= 1 and --timeout in 1..{MAX_TIMEOUT_S}")
    pairs = read_segments(args.segments)
    ami = batch_ami(args, instance_type)
    tag = args.image_tag or git_sha()
    ensure_image(make("ecr", c["REGION"]), c["ECR_STEREOCRAFTER_SAGEMAKER_URL"], tag)
    sm, s3 = make("sagemaker", c["REGION"]), make("s3", c["REGION"])
    preset = args.preset or config.get(Env.PRESET) or DEFAULT_PRESET
    # only the preset the film is converted with, unless --presets says otherwise: an instant film
    # needs no SVD token and loads no diffusion UNet
    presets = served_presets(args, {}) or preset
    env = {
        Env.PRESET: preset,
        **({} if ami is not None else {Env.DEVICE: "cpu"}),
    }  # a CPU instance has no cuda
    image = f"{c['ECR_STEREOCRAFTER_SAGEMAKER_URL']}:{tag}"
    concurrency = args.max_concurrent or gpus_of(instance_type)  # what /execution-parameters answers
    # the same film, image and settings: the same name, so that a rerun finds its jobs
    made_of = [pairs, args.mode, presets, env, image, instance_type, args.instance_count, ami, concurrency,
               args.timeout, args.work]  # fmt: skip
    name = f"{NAME_PREFIX}-batch-{hashlib.sha256(json.dumps(made_of).encode()).hexdigest()[:10]}"
    if not _model_exists(sm, name):
        create_model(sm, name, image=image, role_arn=c["SAGEMAKER_ENDPOINT_ROLE_ARN"],
                     hf_token_arn=c["HF_TOKEN_SECRET_ARN"], presets=presets, extra_env=env)  # fmt: skip
    engine = SageMakerTransform(
        sm, S3Parts(s3, args.work), model=name, instance_type=instance_type,
        instance_count=args.instance_count, ami=ami, concurrency=concurrency,
        timeout_s=args.timeout, wait_delay=args.wait_delay, wait_attempts=args.wait_attempts,
    )  # fmt: skip
    result = convert_segments_batch(pairs, engine, name=name, mode=args.mode, log=print, preset=preset)
    for outcome in result.segments:
        if outcome.error is not None:
            print(f"segment {outcome.index} ({outcome.source}): {outcome.stage} failed: {outcome.error}")
    if result.failed:
        raise DeployError(f"segments {result.failed} were not converted; a rerun reuses the others")
    print(f"{len(pairs)} segments converted: {', '.join(o.output for o in result.segments)}")
