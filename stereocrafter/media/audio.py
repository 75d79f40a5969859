"""Output containers and their audio: which container a suffix means (``OUTPUT_FORMATS``), whether a
source's audio is copied or transcoded to AAC (``audio_plan``, the one rule of conversions and of
stitching), and ``SourceAudio``, which carries every audio stream of a source into an output."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import av.filter
from av.audio.resampler import AudioResampler
from av.container import InputContainer, OutputContainer

from stereocrafter.errors import VideoDecodeError
from stereocrafter.media.video_io import reason

logger = logging.getLogger(__name__)

# Output container by file suffix (.m4v is MP4: FFmpeg's own guess for it, "ipod", takes only
# AAC, AC-3 and ALAC audio).
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


# Audio codecs each container carries as they are, and common players play; None: whatever the
# muxer takes. The muxer must take the stream too (``muxer_takes``: MOV refuses Opus and FLAC).
# Anything else is transcoded to AAC.
_PCM = frozenset({"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_f32be"})


MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


COPIED_AUDIO: dict[str, frozenset[str] | None] = {
    "mp4": MP4_AUDIO_CODECS,
    "mov": MP4_AUDIO_CODECS | _PCM,  # PCM is QuickTime's own
    "matroska": None,
}


def output_format(path: str | os.PathLike[str]) -> str:
    """The container of an output file, by its suffix (``OUTPUT_FORMATS``); ``ValueError`` for
    any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output suffix {suffix!r}; expected one of {sorted(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[suffix]


def muxer_takes(fmt: str, stream: av.AudioStream) -> bool:
    """Whether the ``fmt`` muxer accepts ``stream`` as it is: a header is written in memory."""
    try:
        with av.open(io.BytesIO(), mode="w", format=fmt) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def audio_plan(fmt: str, stream: av.AudioStream) -> str:
    """What an output of container ``fmt`` does with a source audio stream: ``"copy"`` when the
    container carries its codec as it is (``COPIED_AUDIO``) and the muxer takes it, else
    ``"aac"`` (transcoded). The one rule for conversions (``VideoWriter``) and stitching."""
    codec = stream.codec_context.codec.canonical_name  # "mp3", where the decoder is "mp3float"
    allowed = COPIED_AUDIO.get(fmt)
    if (allowed is None or codec in allowed) and muxer_takes(fmt, stream):
        return "copy"
    return "aac"


# Default channel layouts by channel count, for sources whose layout is unnamed ("2 channels").
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _aac_layout(source: av.AudioStream) -> str:
    """A channel layout the AAC encoder accepts for ``source`` (unnamed layouts get the default
    layout of their channel count; more than 8 channels are down-mixed to stereo)."""
    name = source.layout.name
    if "channels" not in name and name in _DEFAULT_LAYOUTS.values():
        return name
    return _DEFAULT_LAYOUTS.get(source.layout.nb_channels, "stereo")


class _AudioTrack:
    """One audio stream of the source: copied packet for packet, or transcoded to AAC
    (``audio_plan``)."""

    def __init__(self, out: OutputContainer, source: av.AudioStream) -> None:
        self.source = source
        self.copy = audio_plan(out.format.name, source) == "copy"
        self.resampler: AudioResampler | None = None
        self.samples = 0
        if self.copy:
            self.stream = out.add_stream_from_template(source)
        else:
            layout = _aac_layout(source)
            self.stream = out.add_stream("aac", rate=source.rate, layout=layout)
            frame_size = self.stream.codec_context.frame_size or 1024
            self.resampler = AudioResampler(
                format="fltp", layout=layout, rate=source.rate, frame_size=frame_size
            )

    @property
    def note(self) -> str:
        codec = self.source.codec_context.codec.canonical_name
        return f"{codec} copied" if self.copy else f"{codec} transcoded to AAC"

    def mux(self, out: OutputContainer, packet: av.Packet[Any] | None) -> None:
        """Send one source packet (``None`` = end of stream: flush the transcoder)."""
        if packet is not None and packet.size == 0:
            return  # the demuxer's end-of-stream marker; ``None`` flushes once, at close
        if self.copy:
            if packet is not None:
                packet.stream = self.stream
                out.mux(packet)
            return
        assert self.resampler is not None
        decoded = packet.decode() if packet is not None else self.source.codec_context.decode(None)
        frames = [
            resampled
            for frame in decoded
            if isinstance(frame, av.AudioFrame)
            for resampled in self.resampler.resample(frame)
        ]
        if packet is None:
            frames += self.resampler.resample(None)
        for frame in frames:
            # Number samples from 0 so the encoder marks its priming delay (the muxer then writes
            # the edit list that players use to trim it).
            frame.pts = self.samples
            frame.time_base = Fraction(1, self.source.rate)
            self.samples += frame.samples
            out.mux(self.stream.encode(frame))
        if packet is None:
            out.mux(self.stream.encode(None))


class SourceAudio:
    """Every audio stream of a source file carried into an output: copied or transcoded to AAC
    (``audio_plan``), interleaved with the output's video by ``pump``, cut at ``end`` seconds
    (packets that start at or after it are left out; None: all of them).

    A stream the output cannot take at all (no AAC encoder for its layout, say) is not silently
    lost: it is left out and named in ``dropped``, with why; ``notes`` says what happened to
    every stream. Raises ``VideoDecodeError`` when the source's audio cannot be read."""

    def __init__(self, out: OutputContainer, source: Path, end: float | None = None) -> None:
        self.end = end
        self.tracks: dict[int, _AudioTrack] = {}
        self.notes: list[str] = []
        self.dropped: list[str] = []
        self._pending: av.Packet[Any] | None = None
        self._packets: Iterator[av.Packet[Any]] | None = None
        try:
            self._in: InputContainer | None = av.open(str(source), mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{source.name}: cannot read its audio ({reason(err)})") from None
        for stream in self._in.streams.audio:
            try:
                track = _AudioTrack(out, stream)
            except (av.error.FFmpegError, ValueError) as err:
                why = f"audio stream {stream.index} ({stream.codec_context.name}) left out: {err}"
                logger.warning("%s: %s", source.name, why)
                self.dropped.append(why)
                continue
            self.tracks[stream.index] = track
            self.notes.append(track.note)
        if self.tracks:
            streams = [self._in.streams[i] for i in self.tracks]
            self._packets = iter(self._in.demux(*streams))
            self._pending = self._next()

    def _next(self) -> av.Packet[Any] | None:
        try:
            return next(self._packets, None) if self._packets is not None else None
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"the source's audio is damaged ({reason(err)})") from None

    def pump(self, out: OutputContainer, until: float | None) -> None:
        """Mux the source's packets up to ``until`` seconds (to ``end`` for None), so audio and
        video stay interleaved in the file."""
        while self._pending is not None:
            packet = self._pending
            start = float(packet.pts * packet.time_base) if packet.pts is not None else None
            if start is not None and self.end is not None and start >= self.end:
                self._pending = None  # past the video's end: the rest is left out
                break
            if start is not None and until is not None and start > until:
                return
            self.tracks[packet.stream.index].mux(out, packet)
            self._pending = self._next()

    def finish(self, out: OutputContainer) -> None:
        """The remaining packets (to ``end``), then the transcoders' last frames."""
        self.pump(out, None)
        for track in self.tracks.values():
            track.mux(out, None)

    def close(self) -> None:
        source, self._in = self._in, None
        if source is not None:
            source.close()
