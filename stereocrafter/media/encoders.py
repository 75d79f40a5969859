"""Which H.264/HEVC encoder writes the stereo video: ``STEREOCRAFTER_ENCODER`` (``--encoder``).

- ``libx264``: the CPU encoder, preset ``X264_PRESET`` (veryfast), CRF = the quality (18 by
  default). veryfast rather than x264's default medium: on a 3840x1080 side-by-side picture it
  encodes 1.6x faster (73.5 against 119.7 ms a frame on 2 vCPUs) for a 22 % smaller file and
  2.1 dB less PSNR at the same CRF (bench/nvenc_check.py; CRF 16 gives back 1.2 dB at 95 % of
  medium's size). At turbo speed the encoder is the host's largest cost; superfast and ultrafast
  turn off x264's mb-tree and most motion analysis (ultrafast CABAC too): far larger files.
  Always with x264's ``cpu-independent`` (``X264_PARAMS``): without it the same frames encoded
  twice in one process can give different bitstreams (measured: 1 to 4 distinct files in 20
  encodes of one 12-frame clip on an AVX-512 Xeon, up to 56 code values apart once decoded).
  x264's hand-written AVX-512 mb-tree propagation, picked at run time on a CPU that has it, gives
  results that vary from call to call; restricting x264 to AVX2 or turning mb-tree off made every
  encode identical, and so does ``cpu-independent``, which keeps mb-tree but runs its portable
  code. Its cost was within the noise of a 3840x1080 veryfast encode (bench/encode_determinism.py).
- ``h264_nvenc`` / ``hevc_nvenc``: the GPU's video encoder (A10G, L4, L40S, T4 and consumer
  cards carry one; A100, H100 and H200 do not), preset ``NVENC_PRESET`` (p4, the middle of p1-p7),
  tune hq, VBR with constant quality CQ = the quality and no bitrate cap. It runs on its own
  silicon: no CPU cores and no CUDA cores taken from the models.
- ``auto`` (the default): ``h264_nvenc`` when it opens on this machine, else ``libx264``; the
  reason NVENC was not usable is kept (``Encoder.fallback``) for the log, the report and
  ``doctor``. H.264 rather than HEVC: every player and browser decodes it.

Whether NVENC is usable is found by opening it on a tiny frame (``nvenc_problem``, once per
process): PyAV's wheel carries the encoders, and they fail to open without a driver or an NVENC
engine, with FFmpeg's reason (on a machine without a driver: "Cannot load libcuda.so.1").
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error
import av.logging
import numpy as np

from stereocrafter.bounds import DEFAULT_QUALITY, check_encoder
from stereocrafter.errors import EncoderUnavailableError

X264_PRESET = "veryfast"
NVENC_PRESET = "p4"
NVENC_CODECS = ("h264_nvenc", "hevc_nvenc")
AUTO_NVENC = "h264_nvenc"  # what ``auto`` tries first
# Same frames, same bytes (see the module docstring): x264's portable mb-tree code, on every CPU.
X264_PARAMS = "cpu-independent=1"
_PROBE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Encoder:
    """A usable encoder: ``codec`` (an FFmpeg encoder name), what was ``requested`` (``auto`` or
    the codec) and, when ``auto`` fell back to libx264, why (``fallback``). ``gpu``: the card an
    NVENC session opens on (FFmpeg's ``gpu`` option; ``for_device`` sets it per conversion slot):
    without it every slot's NVENC session would open on GPU 0."""

    codec: str = "libx264"
    requested: str = "libx264"
    fallback: str | None = None
    gpu: int | None = None

    @property
    def nvenc(self) -> bool:
        return self.codec in NVENC_CODECS

    @property
    def preset(self) -> str:
        return NVENC_PRESET if self.nvenc else X264_PRESET

    def for_device(self, device: str) -> Encoder:
        """This encoder for a slot on ``device`` (``cuda:N``: NVENC opens on card N; otherwise
        unchanged)."""
        if not self.nvenc or not device.startswith("cuda"):
            return self
        _, _, index = device.partition(":")
        return dataclasses.replace(self, gpu=int(index or 0))

    def options(self, quality: int = DEFAULT_QUALITY, preset: str | None = None) -> dict[str, str]:
        """The codec's options for ``quality`` (CRF for libx264, CQ for NVENC; 0-51)."""
        chosen = preset or self.preset
        if self.nvenc:  # constant quality: VBR at CQ with no target bitrate ("b" 0)
            options = {"preset": chosen, "tune": "hq", "rc": "vbr", "cq": str(quality), "b": "0"}
            if self.gpu is not None:
                options["gpu"] = str(self.gpu)
            return options
        return {"preset": chosen, "crf": str(quality), "x264-params": X264_PARAMS}

    def describe(self, quality: int = DEFAULT_QUALITY) -> dict[str, Any]:
        """For the response and the report: codec, preset, quality (``crf`` or ``cq``), what was
        asked for, and the fallback's reason when there was one."""
        facts: dict[str, Any] = {
            "codec": self.codec,
            "preset": self.preset,
            ("cq" if self.nvenc else "crf"): quality,
            "requested": self.requested,
        }
        if self.fallback is not None:
            facts["fallback"] = self.fallback
        if self.gpu is not None:
            facts["gpu"] = self.gpu
        return facts

    def label(self, quality: int = DEFAULT_QUALITY) -> str:
        """One line for the log: "libx264 (preset veryfast, CRF 18; auto fell back: ...)"."""
        scale = "CQ" if self.nvenc else "CRF"
        text = f"{self.codec} (preset {self.preset}, {scale} {quality}"
        if self.fallback is not None:
            text += f"; auto fell back: {self.fallback}"
        return text + ")"


LIBX264 = Encoder()


@functools.cache
def _problem(codec: str) -> str | None:
    # FFmpeg says why in its log, which PyAV keeps only while a log level is set: set it for the
    # probe (once per process, under ``_PROBE_LOCK``) and capture what is said.
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as said:
            try:
                _encode_one_frame(codec)
            except (av.error.FFmpegError, ValueError) as err:
                lines = [str(line[2]).strip() for line in said if len(line) > 2 and str(line[2]).strip()]
                text = "; ".join(dict.fromkeys(lines)) or str(getattr(err, "strerror", "") or err).strip()
                return text[:300] or type(err).__name__
    finally:
        av.logging.set_level(level)
    return None


def _encode_one_frame(codec: str) -> None:
    context: Any = av.CodecContext.create(codec, "w")  # a video encoder: typed as the base class
    context.width, context.height = 256, 144  # above every NVENC generation's minimum size
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, 24)
    context.options = Encoder(codec, codec).options()
    context.open()
    frame = av.VideoFrame.from_ndarray(np.zeros((144, 256, 3), dtype=np.uint8), format="rgb24")
    frame = frame.reformat(format="yuv420p")
    frame.pts = 0
    context.encode(frame)
    context.encode(None)  # flushed; FFmpeg frees the context (the session) with the object


def nvenc_problem(codec: str = AUTO_NVENC) -> str | None:
    """None when ``codec`` (an NVENC encoder) opens and encodes a frame here, else why not, in
    FFmpeg's words. Probed once per process (thread-safe)."""
    if codec not in NVENC_CODECS:
        raise ValueError(f"{codec} is not an NVENC encoder ({', '.join(NVENC_CODECS)})")
    with _PROBE_LOCK:
        return _problem(codec)


def choose_encoder(requested: str = "auto", name: str = "STEREOCRAFTER_ENCODER") -> Encoder:
    """The encoder for ``requested`` (one of ``bounds.ENCODERS``): ``auto`` takes NVENC when it is
    usable and libx264 otherwise; a named NVENC encoder that is not usable raises
    ``EncoderUnavailableError`` (asked for by name, it is not silently replaced). ``name``: where
    the request came from, for the messages (the setting, or the CLI's ``--encoder``)."""
    check_encoder(requested, name)
    if requested == "libx264":
        return LIBX264
    if requested == "auto":
        problem = nvenc_problem(AUTO_NVENC)
        if problem is None:
            return Encoder(AUTO_NVENC, "auto")
        return Encoder("libx264", "auto", fallback=f"{AUTO_NVENC} is not usable here: {problem}")
    problem = nvenc_problem(requested)
    if problem is not None:
        raise EncoderUnavailableError(
            f"{name} {requested}: {requested} cannot be opened here: {problem} "
            f"(A100, H100 and H200 have no NVENC; use auto or libx264)"
        )
    return Encoder(requested, requested)


def nvenc_lines() -> list[str]:
    """``doctor``'s view: whether each NVENC encoder opens here."""
    found = {codec: nvenc_problem(codec) for codec in NVENC_CODECS}
    usable = [codec for codec, problem in found.items() if problem is None]
    if usable:
        return [f"NVENC: usable ({', '.join(usable)})"]
    return [f"NVENC: not usable ({found[AUTO_NVENC]})"]


__all__ = ["LIBX264", "Encoder", "choose_encoder", "nvenc_lines", "nvenc_problem"]
