"""The stereo layout written into the container, so that players and upload services show a
side-by-side or top-bottom file as 3D instead of as a wide (or tall) 2D picture.

- MP4 and MOV: the Spherical Video V2 ``st3d`` box (a FullBox with one byte, ``stereo_mode``:
  1 top-bottom with the left eye on top, 2 left-right with the left eye on the left), placed as
  a child of the video track's sample entry (``avc1``/``hvc1``) after the codec's boxes and
  before the optional ``clap``/``pasp``/``btrt`` (as the RFC places it), the only stereo box
  there. FFmpeg's muxer writes it only for MP4 and only with ``-strict unofficial``, from side
  data PyAV cannot attach, so this module writes it into the finished file (``tag_file``): the
  boxes that hold it grow by 13 bytes and every chunk offset behind the ``moov`` box moves too.
- Matroska: the ``StereoMode`` element, which FFmpeg's muxer writes from the video stream's
  ``stereo_mode`` metadata (``matroska_metadata``).
- Anaglyph and the other one-picture outputs get no tag (``layout_of`` answers None).

``read_layout`` reads the tag back (our parser for MP4/MOV, the demuxer's metadata for Matroska):
``stitch`` carries the segments' layout over to the stitched file.
"""

from __future__ import annotations

import os
import shutil
import struct
import uuid
from pathlib import Path
from typing import BinaryIO

import av

from stereocrafter.media.audio import output_format

# A service mode -> the layout its picture has (half-sbs is squeezed side by side: the same tag; a
# player stretches each half to the picture's aspect).
LAYOUTS: dict[str, str] = {"sbs": "left_right", "half-sbs": "left_right", "top-bottom": "top_bottom"}
ST3D_MODES: dict[str, int] = {"top_bottom": 1, "left_right": 2}
_ST3D_LAYOUTS = {value: key for key, value in ST3D_MODES.items()}
_PATH = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
_STEREO = (b"st3d", b"vexu")
_TAIL = (b"clap", b"pasp", b"btrt")  # the entry's optional boxes, which come after st3d
_VISUAL_ENTRY_FIELDS = 78  # SampleEntry (8) + VisualSampleEntry (70) before the entry's child boxes


def layout_of(mode: str) -> str | None:
    """The layout a stereo ``mode`` is tagged with, None for one picture (anaglyph)."""
    return LAYOUTS.get(mode)


def describe(fmt: str, layout: str | None) -> str | None:
    """What the response and the report say was written, e.g. ``"st3d left_right"``."""
    if layout is None:
        return None
    return f"StereoMode {layout}" if fmt == "matroska" else f"st3d {layout}"


def matroska_metadata(layout: str | None) -> dict[str, str]:
    """The video stream metadata that makes FFmpeg's Matroska muxer write ``StereoMode``."""
    return {"stereo_mode": layout} if layout is not None else {}


class _Box:
    __slots__ = ("header", "kind", "size", "start")

    def __init__(self, kind: bytes, start: int, header: int, size: int) -> None:
        self.kind, self.start, self.header, self.size = kind, start, header, size

    @property
    def body(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def _header(head: bytes | bytearray, at: int, pos: int, end: int) -> _Box:
    """The box whose header is at ``head[at:]``, standing at ``pos`` of a container ending at ``end``
    (a 64-bit size when the 32-bit one is 1; to the end when it is 0)."""
    size, kind = struct.unpack_from(">I4s", head, at)
    header = 8
    if size == 1:
        (size,) = struct.unpack_from(">Q", head, at + 8)
        header = 16
    elif size == 0:
        size = end - pos
    if size < header or pos + size > end:
        raise ValueError(f"a malformed {kind!r} box at byte {pos}")
    return _Box(kind, pos, header, size)


def _children(data: bytes | bytearray, start: int, end: int) -> list[_Box]:
    boxes, pos = [], start
    while pos + 8 <= end:
        boxes.append(_header(data, pos, pos, end))
        pos = boxes[-1].end
    return boxes


def _top_level(path: Path) -> list[_Box]:
    """The file's top-level boxes, read by their headers alone (an mdat is never read)."""
    boxes, pos, total = [], 0, path.stat().st_size
    with open(path, "rb") as f:
        while pos + 8 <= total:
            f.seek(pos)
            try:
                boxes.append(_header(f.read(16), 0, pos, total))
            except (ValueError, struct.error) as err:
                raise ValueError(f"{path.name}: {err}") from None
            pos = boxes[-1].end
    return boxes


def _video_entry(moov: bytes | bytearray) -> list[_Box]:
    """The chain moov > trak > mdia > minf > stbl > stsd > the first sample entry of the video track."""
    root = _Box(b"moov", 0, 8 if struct.unpack_from(">I", moov)[0] != 1 else 16, len(moov))
    for trak in (b for b in _children(moov, root.body, root.end) if b.kind == b"trak"):
        chain = [root, trak]
        for kind in _PATH[2:]:
            found = [b for b in _children(moov, chain[-1].body, chain[-1].end) if b.kind == kind]
            if not found:
                break
            chain.append(found[0])
            if kind == b"mdia":
                hdlr = [b for b in _children(moov, found[0].body, found[0].end) if b.kind == b"hdlr"]
                if not hdlr or moov[hdlr[0].body + 8 : hdlr[0].body + 12] != b"vide":
                    break
        else:
            stsd = chain[-1]
            entries = _children(moov, stsd.body + 8, stsd.end)  # after version/flags and the count
            if entries:
                return [*chain, entries[0]]
    raise ValueError("no video track with a sample entry")


def _stereo_boxes(entry: _Box, moov: bytes | bytearray) -> list[_Box]:
    """The sample entry's stereo children: ``st3d``, and Apple's ``vexu`` that FFmpeg 8's MOV
    muxer writes from copied stereo side data (a stitched MOV); a demuxer refuses a file with both."""
    return [b for b in _children(moov, entry.body + _VISUAL_ENTRY_FIELDS, entry.end) if b.kind in _STEREO]


def _grow(moov: bytearray, box: _Box, by: int) -> None:
    if box.header == 16:
        struct.pack_into(">Q", moov, box.start + 8, box.size + by)
    else:
        struct.pack_into(">I", moov, box.start, box.size + by)


def _shift_chunk_offsets(moov: bytearray, after: int, by: int) -> None:
    """Every chunk offset (``stco``, ``co64``) at or past ``after`` moves ``by`` bytes."""

    def walk(start: int, end: int) -> None:
        for box in _children(moov, start, end):
            if box.kind in (b"trak", b"mdia", b"minf", b"stbl"):
                walk(box.body, box.end)
            elif box.kind in (b"stco", b"co64"):
                wide = box.kind == b"co64"
                (count,) = struct.unpack_from(">I", moov, box.body + 4)
                fmt, step = (">Q", 8) if wide else (">I", 4)
                for i in range(count):
                    at = box.body + 8 + i * step
                    (value,) = struct.unpack_from(fmt, moov, at)
                    if value >= after:
                        if not wide and value + by >= 2**32:
                            raise ValueError("a 32-bit chunk offset would overflow")
                        struct.pack_into(fmt, moov, at, value + by)

    header = 16 if struct.unpack_from(">I", moov)[0] == 1 else 8
    walk(header, len(moov))


def _rebuild_entry(moov: bytearray, entry: _Box, layout: str) -> int:
    """The sample entry with our ``st3d`` as its one stereo box, placed where the RFC says: after
    the codec's boxes, before the optional tail (``clap``, ``pasp``, ``btrt``). Returns the change
    in the entry's size."""
    fields = entry.body + _VISUAL_ENTRY_FIELDS
    kids = _children(moov, fields, entry.end)
    kept = [bytes(moov[k.start : k.end]) for k in kids if k.kind not in _STEREO]
    kinds = [k.kind for k in kids if k.kind not in _STEREO]
    at = next((i for i, kind in enumerate(kinds) if kind in _TAIL), len(kept))
    kept.insert(at, struct.pack(">I4sIB", 13, b"st3d", 0, ST3D_MODES[layout]))
    rest = moov[kids[-1].end if kids else fields : entry.end]  # bytes after the last box (a terminator)
    body = moov[entry.body : fields] + b"".join(kept) + rest
    if entry.header == 16:
        new = struct.pack(">I4sQ", 1, entry.kind, 16 + len(body)) + body
    else:
        new = struct.pack(">I4s", 8 + len(body), entry.kind) + body
    moov[entry.start : entry.end] = new
    return len(new) - entry.size


def tag_file(path: str | os.PathLike[str], layout: str) -> None:
    """Write (or rewrite) the ``st3d`` box of an MP4/MOV file, in place (through a temporary copy
    renamed over it). ``ValueError`` for a file without a video track or a layout st3d lacks."""
    path = Path(path)
    if layout not in ST3D_MODES:
        raise ValueError(f"st3d has no layout {layout!r}; expected one of {sorted(ST3D_MODES)}")
    boxes = _top_level(path)
    moovs = [b for b in boxes if b.kind == b"moov"]
    if len(moovs) != 1:
        raise ValueError(f"{path.name} has {len(moovs)} moov boxes")
    top = moovs[0]
    with open(path, "rb") as f:
        f.seek(top.start)
        moov = bytearray(f.read(top.size))
    chain = _video_entry(moov)
    entry = chain[-1]
    existing = _stereo_boxes(entry, moov)
    if [b.kind for b in existing] == [b"st3d"]:  # rewrite its mode byte in place: nothing moves
        with open(path, "r+b") as f:
            f.seek(top.start + existing[0].body + 4)
            f.write(bytes([ST3D_MODES[layout]]))
        return
    change = _rebuild_entry(moov, entry, layout)
    for parent in chain[:-1]:
        _grow(moov, parent, change)
    _shift_chunk_offsets(moov, top.end, change)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.st3d{path.suffix}")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            _copy(src, dst, top.start)
            dst.write(moov)
            src.seek(top.end)
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    """``length`` bytes from ``src``'s position to ``dst``, a MiB at a time."""
    while length > 0:
        data = src.read(min(length, 1 << 20))
        if not data:
            raise ValueError("the file ended early")
        dst.write(data)
        length -= len(data)


def _read_moov(path: Path) -> bytes | None:
    moovs = [b for b in _top_level(path) if b.kind == b"moov"]
    if not moovs:
        return None
    with open(path, "rb") as f:
        f.seek(moovs[0].start)
        return f.read(moovs[0].size)


def read_layout(path: str | os.PathLike[str]) -> str | None:
    """The stereo layout a file is tagged with (``st3d`` or ``StereoMode``), None for none."""
    path = Path(path)
    if output_format(path) == "matroska":
        with av.open(str(path)) as container:
            mode = container.streams.video[0].metadata.get("stereo_mode")
        return mode if mode in ST3D_MODES else None
    moov = _read_moov(path)
    if moov is None:
        return None
    st3d = [b for b in _stereo_boxes(_video_entry(moov)[-1], moov) if b.kind == b"st3d"]
    return _ST3D_LAYOUTS.get(moov[st3d[0].body + 4]) if st3d else None


def entry_boxes(path: str | os.PathLike[str]) -> list[str]:
    """The child boxes of an MP4/MOV file's video sample entry, in order (e.g. avcC, colr, st3d, btrt)."""
    moov = _read_moov(Path(path))
    if moov is None:
        raise ValueError(f"{Path(path).name} has no moov box")
    entry = _video_entry(moov)[-1]
    return [b.kind.decode("latin-1") for b in _children(moov, entry.body + _VISUAL_ENTRY_FIELDS, entry.end)]
