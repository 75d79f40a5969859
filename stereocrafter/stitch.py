"""Join converted segments into one file by stream copy (PyAV remux, no re-encode).

The segments' video packets are copied in order, each segment's timestamps shifted by the length
of those before it; the audio is copied from the long source (its first audio stream, cut at the
end of the video; a codec MP4 cannot hold is left out, with a note). The segments must
share codec, size, pixel format, frame rate and codec parameters (they do when one service or one
``convert-long`` run encoded them); anything else is refused, because a player would show garbage.
The output's video frame count is checked against the sum of the segments'.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from stereocrafter.errors import VideoDecodeError
from stereocrafter.video_io import probe

# Audio codecs an MP4 holds as they are; another source codec is not copied (no re-encode here).
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


@dataclass(frozen=True)
class StitchResult:
    output: Path
    frames: int
    segment_frames: list[int]
    audio: str  # "source" or "none: <why>"


def _signature(stream: av.VideoStream) -> tuple[object, ...]:
    ctx = stream.codec_context
    return (ctx.name, ctx.width, ctx.height, ctx.pix_fmt, stream.average_rate, bytes(ctx.extradata or b""))


def stitch(
    parts: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    audio_from: str | os.PathLike[str] | None = None,
) -> StitchResult:
    """Concatenate ``parts`` (in playback order) into ``output``; see the module docstring."""
    if not parts:
        raise ValueError("nothing to stitch")
    counts = [probe(p).num_frames for p in parts]
    output = Path(output)
    offsets: list[Fraction] = []  # each part's start, seconds
    try:
        with av.open(str(output), mode="w") as out:
            audio_note = _stitch_into(out, [Path(p) for p in parts], offsets, audio_from)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    written = probe(output).num_frames
    if written != sum(counts):
        output.unlink(missing_ok=True)
        raise VideoDecodeError(f"the stitched video has {written} frames; the segments hold {sum(counts)}")
    return StitchResult(output, written, counts, audio_note)


def _stitch_into(
    out: av.container.OutputContainer,
    parts: list[Path],
    offsets: list[Fraction],
    audio_from: str | os.PathLike[str] | None,
) -> str:
    first = av.open(str(parts[0]))
    template = first.streams.video[0]
    signature = _signature(template)
    video = out.add_stream_from_template(template)
    source_audio = None
    note = "none: no source given"
    if audio_from is not None:
        source = av.open(str(audio_from))
        note = "none: the source has no audio"
        if source.streams.audio:
            codec = source.streams.audio[0].codec_context.name
            if codec in MP4_AUDIO or out.format.name not in ("mp4", "mov"):
                source_audio = (source, out.add_stream_from_template(source.streams.audio[0]))
                note = "source"
            else:
                note = f"none: the source's {codec} audio cannot be copied into MP4 (no re-encode here)"
        if source_audio is None:
            source.close()
    first.close()

    start = Fraction(0)
    for path in parts:
        with av.open(str(path)) as part:
            stream = part.streams.video[0]
            if _signature(stream) != signature:
                raise VideoDecodeError(
                    f"{path.name} differs from the first segment in codec, size or settings"
                )
            offsets.append(start)
            end = start
            for packet in part.demux(stream):
                if packet.dts is None and packet.pts is None:
                    continue  # a demuxer's flush packet
                base = packet.time_base
                shift = round(start / base)
                if packet.pts is not None:
                    packet.pts += shift
                    end = max(end, (packet.pts + (packet.duration or 0)) * base)
                if packet.dts is not None:
                    packet.dts += shift
                packet.stream = video
                out.mux(packet)
            start = end
    if source_audio is not None:
        source, target = source_audio
        with source:
            for audio_packet in source.demux(source.streams.audio[0]):
                if audio_packet.pts is None:
                    continue
                if audio_packet.pts * audio_packet.time_base >= start:
                    break
                audio_packet.stream = target
                out.mux(audio_packet)
    return note
