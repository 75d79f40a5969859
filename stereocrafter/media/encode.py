"""``VideoWriter``: RGB frames to H.264 or HEVC (libx264 or NVENC: ``encoders``; BT.709 tags,
exact fps) in MP4/MOV/MKV with the source's audio (``audio.SourceAudio``), written under a
temporary name and renamed into place only when complete: a failure raises ``VideoEncodeError``
and leaves no file at the destination."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import av
import av.error
import av.filter
import numpy as np
from av.container import OutputContainer
from av.video.reformatter import ColorRange

from stereocrafter.bounds import DEFAULT_QUALITY, QUALITY
from stereocrafter.errors import VideoEncodeError
from stereocrafter.media.audio import SourceAudio, output_format
from stereocrafter.media.encoders import LIBX264, Encoder
from stereocrafter.media.stereotag import ST3D_MODES, describe, matroska_metadata, tag_file
from stereocrafter.media.video_io import as_fraction, reason

logger = logging.getLogger(__name__)

# The same conversion as an ffmpeg ``scale`` filter for the encoder side, which can also say where
# chroma samples sit: H.264/BT.709 4:2:0 puts them "left" (co-sited horizontally), and decoders
# (ffmpeg's h264 among them) report "left" for streams that do not say. PyAV's ``reformat`` cannot
# set the output siting and produces "center" chroma, which then decodes half a chroma sample off
# (37.9 dB instead of 50.7 dB on a lossless round trip, measured here).
SCALE_TO_BT709 = (
    "out_color_matrix=bt709:out_range=tv:out_chroma_loc=left"
    ":flags=bicubic+accurate_rnd+full_chroma_int+full_chroma_inp"
)


class VideoWriter:
    """Write RGB frames as H.264 into an MP4/MOV/MKV file, atomically.

    Use as a context manager::

        with VideoWriter(out, fps=info.fps, width=w, height=h, audio_source=src) as writer:
            for chunk in chunks:
                writer.write(chunk)   # (t, h, w, 3) or (h, w, 3) uint8 RGB

    - ``encoder`` (``encoders.Encoder``; libx264 by default) at quality ``crf`` (0-51, lower =
      better: libx264's CRF, NVENC's CQ) with the encoder's preset unless ``preset`` names
      another (speed against size); ``pix_fmt`` yuv420p by default, BT.709
      primaries/transfer/matrix, limited range, tagged in the bitstream and the container.
    - ``stereo`` (a layout of ``stereotag.ST3D_MODES``, None for one picture) is written into the
      container: ``st3d`` in MP4/MOV, ``StereoMode`` in Matroska (``stereo_tag`` says which).
    - The frame rate is the exact rational ``fps`` (30000/1001 stays 30000/1001); frame i has
      timestamp i / fps.
    - H.264 4:2:0 needs even dimensions: an odd width or height is padded by repeating the last
      column or row (``encoded_width``/``encoded_height`` tell the stored size).
    - Every audio stream of ``audio_source`` is copied when the container carries its codec
      (``audio_plan``), else transcoded to AAC; it is interleaved with the video.
    - The file is written under a temporary name beside ``path`` and renamed to ``path`` only after
      a successful close; on any error (or an exception inside the ``with`` block) the temporary
      file is removed and nothing appears at ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: Fraction | int | float | str,
        width: int,
        height: int,
        audio_source: str | os.PathLike[str] | None = None,
        crf: int = DEFAULT_QUALITY,
        preset: str | None = None,
        pix_fmt: str = "yuv420p",
        encoder: Encoder = LIBX264,
        stereo: str | None = None,
    ) -> None:
        self.path = Path(path)
        fmt = output_format(self.path)
        if width < 1 or height < 1:
            raise ValueError(f"width and height must be >= 1, got {width}x{height}")
        if not QUALITY[0] <= crf <= QUALITY[1]:
            raise ValueError(f"crf must be in [{QUALITY[0]}, {QUALITY[1]}], got {crf}")
        self.format = fmt
        self.fps = as_fraction(fps)
        self.width, self.height = width, height
        self.encoded_width, self.encoded_height = width + width % 2, height + height % 2
        self.audio_source = Path(audio_source) if audio_source is not None else None
        self.crf, self.preset, self.pix_fmt, self.encoder = crf, preset, pix_fmt, encoder
        if stereo is not None and stereo not in ST3D_MODES:
            raise ValueError(f"unknown stereo layout {stereo!r}; expected one of {sorted(ST3D_MODES)}")
        self.stereo = stereo
        self.frames_written = 0
        self._tmp = self.path.with_name(
            f".{self.path.stem}.{uuid.uuid4().hex[:12]}.partial{self.path.suffix}"
        )
        self._out: OutputContainer | None = None
        self._video: Any = None
        self._to_yuv: av.filter.Graph | None = None
        self._audio: SourceAudio | None = None
        # ``cancel`` from another thread while ``close`` flushes: the file is then removed, never
        # moved into place (the lock orders the two).
        self._cancelled = False
        self._placing = threading.Lock()

    @property
    def stereo_tag(self) -> str | None:
        """The stereo tag this file gets, e.g. ``"st3d left_right"`` (None: no tag)."""
        return describe(self.format, self.stereo)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Create the temporary output and its streams (called by ``__enter__``)."""
        try:
            options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
            self._out = av.open(str(self._tmp), mode="w", format=self.format, options=options)
            video: av.VideoStream = cast(
                av.VideoStream, self._out.add_stream(self.encoder.codec, rate=self.fps)
            )
            if self.encoder.codec.startswith("hevc") and self.format in ("mp4", "mov"):
                video.codec_tag = "hvc1"  # what Apple's players require of HEVC in MP4/MOV
            video.width, video.height = self.encoded_width, self.encoded_height
            video.pix_fmt = self.pix_fmt
            if self.format == "matroska":
                video.metadata.update(matroska_metadata(self.stereo))
            ctx = video.codec_context
            ctx.time_base = 1 / self.fps
            ctx.color_primaries = 1  # BT.709
            ctx.color_trc = 1
            ctx.colorspace = 1
            ctx.color_range = int(ColorRange.MPEG)
            ctx.options = self.encoder.options(self.crf, self.preset)
            self._video = video
            self._to_yuv = self._yuv_graph()
        except av.error.FFmpegError as err:
            self.abort()
            raise VideoEncodeError(f"cannot create {self.path.name}: {reason(err)}") from None
        if self.audio_source is not None:
            self._open_audio(self.audio_source)

    def _yuv_graph(self) -> av.filter.Graph:
        """rgb24 -> ``pix_fmt`` BT.709 limited range, left-sited chroma (see ``SCALE_TO_BT709``)."""
        graph = av.filter.Graph()
        source = graph.add_buffer(
            width=self.encoded_width,
            height=self.encoded_height,
            format=av.VideoFormat("rgb24"),
            time_base=1 / self.fps,
        )
        scale = graph.add("scale", SCALE_TO_BT709)
        pixel_format = graph.add("format", f"pix_fmts={self.pix_fmt}")
        sink = graph.add("buffersink")
        source.link_to(scale)
        scale.link_to(pixel_format)
        pixel_format.link_to(sink)
        graph.configure()
        return graph

    def _open_audio(self, source: Path) -> None:
        assert self._out is not None
        try:
            self._audio = SourceAudio(self._out, source)
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        """Flush the encoders, finish the file and move it to ``path``."""
        if self._out is None:
            return
        if self.frames_written == 0:
            self.abort()
            raise VideoEncodeError(f"no frames were written to {self.path.name}")
        try:
            self._out.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.finish(self._out)
            self._close_containers()
            if self.stereo is not None and self.format != "matroska":
                try:
                    tag_file(self._tmp, self.stereo)
                except ValueError as err:  # FFmpeg wrote a file our box reader cannot follow
                    raise VideoEncodeError(
                        f"cannot write the stereo tag of {self.path.name}: {err}"
                    ) from None
            with self._placing:
                if self._cancelled:
                    self._tmp.unlink(missing_ok=True)
                    return
                os.replace(self._tmp, self.path)
        except av.error.FFmpegError as err:
            self.abort()
            raise VideoEncodeError(f"cannot finish {self.path.name}: {reason(err)}") from err
        except BaseException:
            self.abort()
            raise

    def cancel(self) -> None:
        """From another thread, while ``close`` runs (a job stopped during the encoder's final
        flush): the file is not moved into place; once ``cancel`` returns, no file appears at
        ``path``. The flush itself runs to its end (libx264 cannot be interrupted)."""
        with self._placing:
            self._cancelled = True

    def abort(self) -> None:
        """Give up: close everything and remove the temporary file. Never raises FFmpeg errors."""
        try:
            self._close_containers()
        except av.error.FFmpegError as err:
            logger.debug("ignoring error while aborting %s: %s", self.path.name, err)
        self._tmp.unlink(missing_ok=True)

    def _close_containers(self) -> None:
        out, self._out = self._out, None
        audio, self._audio = self._audio, None
        try:
            if audio is not None:
                audio.close()
        finally:
            if out is not None:
                out.close()

    # -- writing -----------------------------------------------------------------------------

    @property
    def takes_yuv(self) -> bool:
        """Whether ``write_yuv`` may be used: 4:2:0 output at the frames' own size."""
        same_size = (self.encoded_width, self.encoded_height) == (self.width, self.height)
        return self.pix_fmt == "yuv420p" and same_size

    def write_yuv(self, planes: np.ndarray) -> None:
        """Append frames already converted (``media.yuv.rgb_to_yuv420p``, on the device): (t, height
        * 3 // 2, width) uint8, Y then U then V; only when ``takes_yuv``. No swscale on the host."""
        if self._out is None:
            raise RuntimeError("VideoWriter is not open; use it as a context manager")
        shape = (self.height * 3 // 2, self.width)
        if not self.takes_yuv or planes.shape[1:] != shape or planes.dtype != np.uint8:
            got = f"{tuple(planes.shape)} {planes.dtype}"
            raise ValueError(f"YUV 4:2:0 planes must be (t, {shape[0]}, {shape[1]}) uint8 (yuv420p), "
                             f"got {got} ({self.pix_fmt})")  # fmt: skip

        def frames() -> Iterator[av.VideoFrame]:
            for plane in planes:
                frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
                frame.color_range = ColorRange.MPEG
                yield frame

        self._encode(frames())

    def _encode(self, frames: Iterator[av.VideoFrame]) -> None:
        """Encode and mux ``frames`` (the encoder's pixel format), numbered on; the audio follows."""
        assert self._out is not None
        try:
            for frame in frames:
                frame.pts = self.frames_written
                self._out.mux(self._video.encode(frame))
                self.frames_written += 1
            if self._audio is not None:
                self._audio.pump(self._out, until=float(self.frames_written / self.fps))
        except av.error.FFmpegError as err:
            raise VideoEncodeError(f"cannot encode {self.path.name}: {reason(err)}") from None

    def write(self, frames: np.ndarray) -> None:
        """Append frames: (t, height, width, 3) or (height, width, 3) uint8 RGB."""
        if self._out is None:
            raise RuntimeError("VideoWriter is not open; use it as a context manager")
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(f"frames must be (t, {self.height}, {self.width}, 3), got {tuple(frames.shape)}")
        if frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {frames.dtype}")
        pad_h, pad_w = self.encoded_height - self.height, self.encoded_width - self.width
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        graph = self._to_yuv
        assert graph is not None

        def converted() -> Iterator[av.VideoFrame]:
            for rgb in frames:  # lazily: each is encoded (and counted) before the next is made
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = self.frames_written
                graph.push(frame)
                yield cast(av.VideoFrame, graph.pull())

        self._encode(converted())
