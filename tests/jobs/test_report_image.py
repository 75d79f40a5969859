"""``jobs.report_image``: the report's PNG contact sheet and its layout."""

from __future__ import annotations

import numpy as np

from stereocrafter.jobs.report import QualityReport
from stereocrafter.jobs.report_image import PANELS, contact_sheet
from tests.support.report import observe, planes_clip


def test_contact_sheet_layout() -> None:
    clip = planes_clip(frames=10)
    report = QualityReport(thumbnails=3)
    observe(report, clip, [5], clip["left"])
    sheet = contact_sheet(report, "test")
    assert sorted(report.thumbnails) == [0, 4, 9]  # evenly across the clip, first and last included
    assert sheet.size == (2 * 8 + 4 * 240 + 3 * 4, 8 + 18 + 3 * (105 + 4) + 150 + 8)
    pixels = np.asarray(sheet)
    row = 8 + 18 + 50  # the middle of the first row of panels
    for i, name in enumerate(PANELS):
        x = 8 + i * 244 + 120
        assert pixels[row, x].tolist() != [255, 255, 255], name  # every panel is drawn
    holes = pixels[8 + 18 + 20 : 8 + 18 + 105, 8 + 2 * 244 : 8 + 2 * 244 + 240]  # (below the label)
    assert (holes == 0).all(axis=-1).any() and (holes == 255).all(axis=-1).any()  # black, white holes
