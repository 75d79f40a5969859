"""The report's files, written in one place for every job (the CLI's ``--report``, the service's
``<output>.report.json`` and ``.png``): the JSON (``QualityReport.as_dict``) with what the report
says about its run (preset, versions, timings, encoder, tiny weights), and the PNG contact sheet."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from stereocrafter.jobs.context import Job
from stereocrafter.jobs.report import QualityReport


def report_extra(
    job: Job, encoder: dict[str, Any] | None = None, stereo_tag: str | None = None
) -> dict[str, Any]:
    """What a report says about its run besides the figures: the preset (the job's config
    carries it), versions, the job's timings, the encoder that wrote the video
    (``ConversionResult.encoder``) with the stereo tag it wrote into the container (None for an
    anaglyph: one picture) and whether the weights were the tiny test ones."""
    from stereocrafter import __version__
    from stereocrafter.catalog import MODELS, commercial_ok, models_of

    return {
        "preset": job.config.preset,
        # which weights made it, under which licence (the licence-clean presets: ``catalog``)
        "models": {name: MODELS[name].licence for name in models_of([job.config.preset])},
        "commercial_use": commercial_ok(job.config.preset),
        "versions": {
            "stereocrafter": __version__,
            "torch": metadata.version("torch"),
            "diffusers": metadata.version("diffusers"),
        },
        "timings": {k: round(v, 3) for k, v in job.timings.items()},
        **({"encoder": encoder, "stereo_tag": stereo_tag} if encoder is not None else {}),
        "tiny_weights": job.tiny,
        "gpu_seconds": job.gpu_seconds(),  # held so far: up to the report's writing
        "cost": job.cost(),
    }


def write_report(
    report: QualityReport,
    job: Job,
    json_path: Path,
    png_path: Path,
    encoder: dict[str, Any] | None = None,
    stereo_tag: str | None = None,
) -> None:
    """The report's two files for ``job``; ``RuntimeError`` when the report could not be computed."""
    from stereocrafter.jobs.report_image import write_png

    if report.error is not None:
        raise RuntimeError(f"the report could not be computed: {report.error}")
    extra = report_extra(job, encoder, stereo_tag)
    json_path.write_text(json.dumps(report.as_dict(**extra), indent=1))
    title = f"{job.config.preset} preset" + (", TINY RANDOM WEIGHTS" if job.tiny else "")
    write_png(report, png_path, title=title)
