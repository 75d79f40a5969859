"""What each output was made from, recorded beside it, so that a rerun reuses the work that is done
and still valid (``reuse``: ``convert_segments``, ``convert-long``, a request's ``reuse`` field,
a Batch Transform job run again over the same manifest).

A record is a small JSON object at ``<output>.record.json`` (``record_location``), written after
its output (an output without one is never reused)::

    {"format": 2, "recipe": {...}, "made": {...}, "answer": {...}, "code_version": "git ..."}

- ``recipe`` (``recipe``): everything the output depends on:

  - the task;
  - the code (``jobs.provenance.code_identity``): the SHA-256 of the package's sources and the
    versions of torch, diffusers, transformers, PyAV and numpy. Its version (the image's commit,
    ``git describe`` or the package version) is written beside the recipe (``code_version``) for
    people, not compared: a commit that changes no source (the docs, a rebuilt image) keeps the
    records, and an edit that changes one, committed or not, does not;
  - the device type (``cuda`` or ``cpu``: their noise generators draw different numbers). Not the
    card's model: a record made on an A10G is reused on an L4;
  - every weight file the task's models load, with its SHA-256 (``jobs.provenance.weights_of``: a
    depth task's depth model, a stereo task's depth and inpainting models, and SVD's parts under
    either diffusion model), as verified when the pipeline loaded, and whether they were the tiny
    test weights;
  - the resolved run config (preset, depth and inpainting model, steps, ``max_disp``, seed, tiles,
    ...; of a depth task only the fields stage 1 reads: the depth model, its knobs and the seed);
  - the identity of every input (the segment, and for an aligned stereo task the stored depth);
  - a stereo task's mode, alignment map (``depth_scale``, ``depth_shift``, ``depth_range``), encoder
    with its quality, and whether a report was asked for.
- ``made``: the identity of the output when the record was written (S3: size, ETag and the digest
  of the recipe the object carries in its metadata; a local file: size and mtime), so that an
  output replaced since then is not taken for the recorded one.

On S3 two writers of one output (two transform jobs, a retry beside a slow first try) can
interleave: each object carries the SHA-256 of its own recipe in its user metadata
(``RECIPE_METADATA``, written with the upload, in the same request), the record is written only
when the object read back still carries this job's digest, and reuse asks for that digest again, so
one writer's recipe is never recorded over another writer's bytes.
- ``answer``: the task's answer, given again (``reused: true``) instead of doing the work.

Reuse costs one HEAD of the output and one small GET (or two ``stat`` calls and a read on disk).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stereocrafter.jobs.context import Job

RECORD_SUFFIX = ".record.json"
FORMAT = 2  # 2: the recipe names the code, the device and every weight file
MAX_RECORD_BYTES = 1 << 20  # a record is a few KB (the depth answer's thumbnails are the most)
# The run config's fields a depth task reads besides the ``depth_*`` knobs.
DEPTH_CONFIG = ("noise_aug_strength", "seed")
# Of ``Encoder.describe``, what changes the encoded bytes (not what was asked for, or why auto fell back).
_ENCODER_KEYS = ("codec", "preset", "crf", "cq")


RECIPE_METADATA = "stereocrafter-recipe"  # S3 user metadata: the SHA-256 of the object's recipe


def recipe_digest(made_of: dict[str, Any]) -> str:
    """SHA-256 of a recipe's canonical JSON: what an S3 output carries in its metadata."""
    return hashlib.sha256(json.dumps(canonical(made_of), sort_keys=True).encode()).hexdigest()


def record_location(output: str) -> str:
    """Where the record of ``output`` (an s3:// URI or a path) is kept."""
    return f"{output}{RECORD_SUFFIX}"


def recipe(job: Job, task: str, inputs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """What an output of ``task`` under ``job`` is made from (see the module docstring); ``fields``
    are the task's own (mode, alignment map, report)."""
    from stereocrafter.jobs.provenance import code_identity, weights_of

    config = asdict(job.config)
    models = [job.config.depth_model] + ([job.config.inpainting_model] if task != "depth" else [])
    if task == "depth":  # what stage 1 reads: another max_disp or inpainting model keeps the depth
        config = {k: v for k, v in config.items() if k.startswith("depth_") or k in DEPTH_CONFIG}
    made_of: dict[str, Any] = {
        "task": task,
        "code": {k: v for k, v in code_identity().items() if k != "version"},
        "device": job.made_by.get("device"),
        "weights": weights_of(job.made_by.get("weights", {}), models),
        "config": config,
        "tiny_weights": job.tiny,
        "inputs": inputs,
        **fields,
    }
    if task == "stereo":
        described = job.encoding.describe()
        made_of["encoder"] = {k: described[k] for k in _ENCODER_KEYS if k in described}
    made: dict[str, Any] = canonical(made_of)
    return made


def canonical(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists, float keys as text): comparable with a
    record read from storage."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def make_record(made_of: dict[str, Any], made: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    from stereocrafter.jobs.provenance import code_identity

    return {"format": FORMAT, "recipe": made_of, "made": canonical(made), "answer": canonical(answer),
            "code_version": code_identity()["version"]}  # fmt: skip


def reusable(record: Any, made_of: dict[str, Any], made: dict[str, Any] | None) -> dict[str, Any] | None:
    """The recorded answer when ``record`` describes this output as it is now (``made``: None when
    the output is missing) and was made from ``made_of``; else None (the work is done again)."""
    if made is None or not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    if record.get("recipe") != made_of or record.get("made") != canonical(made):
        return None
    answer = record.get("answer")
    return dict(answer) if isinstance(answer, dict) else None


def parse_record(data: bytes) -> Any:
    """A record's JSON, or None when it cannot be read (a torn or foreign object: no reuse)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


# -- on local disk (``convert-long``'s segments) ---------------------------------------------------


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A local file as a record names it (None when it does not exist)."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_local(output: str | os.PathLike[str], made_of: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded answer of a local ``output`` made from ``made_of``, or None."""
    location = Path(record_location(str(output)))
    try:
        if location.stat().st_size > MAX_RECORD_BYTES:
            return None
        record = parse_record(location.read_bytes())
    except FileNotFoundError:
        return None
    return reusable(record, made_of, file_identity(output))


def write_local(output: str | os.PathLike[str], made_of: dict[str, Any], answer: dict[str, Any]) -> None:
    """Record a finished local ``output`` (atomically: a killed run leaves no torn record)."""
    made = file_identity(output)
    if made is None:
        raise FileNotFoundError(f"{output} does not exist: nothing to record")
    location = Path(record_location(str(output)))
    partial = location.with_name(f".{location.name}.partial")
    partial.write_text(json.dumps(make_record(made_of, made, answer), indent=1, sort_keys=True))
    os.replace(partial, location)
