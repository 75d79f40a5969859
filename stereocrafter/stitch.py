"""``stereocrafter.stitch.stitch``, the name the README gave callers (the video-worker joins the
converted segments with it) before the media family moved it to ``stereocrafter.media.stitch``:
kept as a re-export, so a caller's import keeps working. New code imports ``media.stitch``."""

from stereocrafter.media.stitch import StitchResult, check_stitchable, stitch

__all__ = ["StitchResult", "check_stitchable", "stitch"]
