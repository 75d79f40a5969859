"""Join converted segments into one file by stream copy (PyAV remux, no video re-encode).

The segments' video packets are copied in order, each segment's timestamps shifted by the length
of those before it. The output's container comes from its suffix through the same table as every
other output (``audio.OUTPUT_FORMATS``: .mp4, .m4v, .mov, .mkv). Every audio stream of the long
source is carried over, cut at the end of the video, by the rule single-file conversions follow
(``audio.audio_plan``): copied when the container carries its codec, otherwise transcoded to
AAC; a stream that cannot be kept at all is named in the result (``dropped``), never lost
silently. Segments written as Matroska (.mkv) carry no decode timestamps for their first,
reordered frames (Matroska stores presentation times only): they are rebuilt from the presentation
times, as FFmpeg's own demuxer does for the later frames (``_decode_times``), and an MP4 or MOV
output gets the codec's sample entry (``MP4_TAGS``), which Matroska does not keep. A container that
still refuses the segments' streams is a ``StitchError`` naming what to do. The segments must share
codec, size, pixel format, frame rate and codec parameters
(they do when one service or one ``convert-long`` run encoded them); anything else is refused,
because a player would show garbage. The segments' stereo tag (``stereotag``: ``st3d`` or
``StereoMode``, the same in every segment) is written into the output. The output's video frame
count is checked against the sum of the segments'; the file is written under a temporary name
and renamed into place when whole.

``check_stitchable`` tries the output's container with the source's audio before any conversion.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from stereocrafter.errors import StitchError, VideoDecodeError, VideoEncodeError
from stereocrafter.guard import Every, Stop
from stereocrafter.media.audio import SourceAudio, output_format
from stereocrafter.media.stereotag import describe, matroska_metadata, read_layout, tag_file
from stereocrafter.media.video_io import probe

# The MP4/MOV sample entry of each codec the segments may carry (hvc1: what Apple's players require).
MP4_TAGS = {"h264": "avc1", "hevc": "hvc1"}


@dataclass(frozen=True)
class StitchResult:
    output: Path
    frames: int
    segment_frames: list[int]
    audio: str  # what happened to the source's audio, e.g. "aac copied" or "none: the source has none"
    dropped: list[str] = field(default_factory=list)  # audio streams that could not be kept, with why
    stereo_tag: str | None = None  # the segments' stereo layout, written into the output (``stereotag``)


def _signature(stream: av.VideoStream) -> tuple[object, ...]:
    ctx = stream.codec_context
    return (ctx.name, ctx.width, ctx.height, ctx.pix_fmt, stream.average_rate, bytes(ctx.extradata or b""))


def check_stitchable(output: str | os.PathLike[str], audio_from: str | os.PathLike[str] | None) -> str:
    """Try, in memory, the output's container with an H.264 video stream and the audio
    ``audio_from`` would bring: what ``stitch`` will do with the audio (``StitchResult.audio``).
    ``ValueError`` for an unsupported suffix, ``VideoEncodeError`` when the container refuses the
    streams, ``VideoDecodeError`` when the source's audio cannot be read."""
    fmt = output_format(output)
    try:
        with av.open(io.BytesIO(), mode="w", format=fmt) as trial:
            video = trial.add_stream("libx264", rate=24)
            video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
            audio = SourceAudio(trial, Path(audio_from)) if audio_from is not None else None
            try:
                trial.start_encoding()
            finally:
                if audio is not None:
                    audio.close()
    except av.error.FFmpegError as err:
        raise VideoEncodeError(f"a {fmt} file cannot hold this video and audio: {err}") from None
    return _audio_note(audio, audio_from)


def _audio_note(audio: SourceAudio | None, audio_from: str | os.PathLike[str] | None) -> str:
    if audio_from is None:
        return "none: no source given"
    assert audio is not None
    if not audio.tracks and not audio.dropped:
        return "none: the source has no audio"
    return ", ".join(audio.notes) or "none: every stream was left out"


def stitch(
    parts: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    audio_from: str | os.PathLike[str] | None = None,
    stop: Stop | None = None,
) -> StitchResult:
    """Concatenate ``parts`` (in playback order) into ``output``; see the module docstring.
    ``stop`` (a deadline) runs every half second of copying."""
    if not parts:
        raise ValueError("nothing to stitch")
    fmt = output_format(output)
    counts = [probe(p).num_frames for p in parts]
    layouts = {read_layout(p) for p in parts}
    if len(layouts) > 1:
        names = sorted(map(str, layouts))
        raise VideoDecodeError(f"the segments are tagged with different stereo layouts: {names}")
    layout = layouts.pop()
    output = Path(output)
    partial = output.with_name(f".{output.stem}.{uuid.uuid4().hex[:12]}.partial{output.suffix}")
    try:
        try:
            with av.open(str(partial), mode="w", format=fmt) as out:
                audio = _stitch_into(out, [Path(p) for p in parts], audio_from, Every(stop), layout)
        except av.error.FFmpegError as err:  # the container refused the segments' streams
            codec = _codec_of(parts[0])
            raise StitchError(
                f"a {fmt} file cannot take the segments' {codec} video as it is ({err}); stitch into "
                f".mkv (Matroska takes any codec) or convert the segments again with the output's suffix"
            ) from None
        if layout is not None and fmt != "matroska":
            tag_file(partial, layout)
        written = probe(partial).num_frames
        if written != sum(counts):
            raise VideoDecodeError(
                f"the stitched video has {written} frames; the segments hold {sum(counts)}"
            )
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return StitchResult(
        output, written, counts, _audio_note(audio, audio_from), audio.dropped if audio else [],
        describe(fmt, layout),
    )  # fmt: skip


def _codec_of(path: str | os.PathLike[str]) -> str:
    try:
        with av.open(str(path)) as part:
            return str(part.streams.video[0].codec_context.name)
    except (av.error.FFmpegError, IndexError):
        return "unknown"


def _decode_times(path: Path) -> tuple[list[int], int]:
    """For a segment some of whose video packets lack a decode timestamp (Matroska's reordered
    frames): its presentation times in order and the reorder delay, the least shift that puts every
    packet's decode time at or before its presentation time, so that ``sorted pts[i] - delay`` is a
    valid, rising decode time for the i-th packet; ([], 0) when every packet has its own."""
    with av.open(str(path)) as part:
        packets = [(p.pts, p.dts) for p in part.demux(part.streams.video[0]) if p.pts is not None]
    if all(dts is not None for _, dts in packets):
        return [], 0
    ordered = sorted(pts for pts, _ in packets)
    return ordered, max(0, *(o - pts for o, (pts, _) in zip(ordered, packets, strict=True)))


def _stitch_into(
    out: av.container.OutputContainer,
    parts: list[Path],
    audio_from: str | os.PathLike[str] | None,
    every: Every,
    layout: str | None,
) -> SourceAudio | None:
    with av.open(str(parts[0])) as first:
        template = first.streams.video[0]
        signature = _signature(template)
        video = out.add_stream_from_template(template)
        if out.format.name != "matroska" and template.codec_context.name in MP4_TAGS:
            video.codec_tag = MP4_TAGS[template.codec_context.name]  # Matroska keeps none
        video.metadata.pop("stereo_mode", None)
        if out.format.name == "matroska":
            video.metadata.update(matroska_metadata(layout))
    rebuilt = {path: _decode_times(path) for path in parts}
    delay = max((d for _, d in rebuilt.values()), default=0)  # one for every segment: DTS keep rising
    audio = SourceAudio(out, Path(audio_from)) if audio_from is not None else None
    try:
        start = Fraction(0)
        for path in parts:
            with av.open(str(path)) as part:
                stream = part.streams.video[0]
                if _signature(stream) != signature:
                    raise VideoDecodeError(
                        f"{path.name} differs from the first segment in codec, size or settings"
                    )
                end = start
                ordered = iter(rebuilt[path][0])
                for packet in part.demux(stream):
                    every()
                    if packet.dts is None and packet.pts is None:
                        continue  # a demuxer's flush packet
                    if rebuilt[path][0] and packet.pts is not None:
                        packet.dts = next(ordered) - delay
                    base = packet.time_base
                    shift = round(start / base)
                    if packet.pts is not None:
                        packet.pts += shift
                        end = max(end, (packet.pts + (packet.duration or 0)) * base)
                    if packet.dts is not None:
                        packet.dts += shift
                    packet.stream = video
                    out.mux(packet)
                    if audio is not None:  # interleaved: the audio up to this packet's time
                        audio.pump(out, float(end))
                start = end
        if audio is not None:
            audio.end = float(start)  # cut at the end of the video
            audio.finish(out)
    finally:
        if audio is not None:
            audio.close()
    return audio
