"""Known third-party log messages that tell our users nothing, silenced at their source.

Each filter sits on the library logger that emits the message and drops only records whose text
matches it; every other message of those libraries still shows. ``--verbose`` (CLI) skips this.

- transformers: "`CLIPImageProcessor` requires torchvision (not installed); falling back to
  `CLIPImageProcessorPil` ...": the service never runs CLIP's image processor (it normalises
  with the processor's mean and std itself), so the fallback changes nothing.
- diffusers: "There are modules in <Model> that should be kept in float32: []. Casting directly
  with `to()` ...": printed for every `.to(dtype)` of a model, here always with an empty list.
- transformers' "Loading weights" progress bar for the CLIP encoder (a few hundred ms).
"""

from __future__ import annotations

import logging
import re

_KNOWN = {
    "transformers.utils.import_utils": re.compile(r"requires torchvision \(not installed\); falling back"),
    "diffusers.models.modeling_utils": re.compile(r"that should be kept in float32: \[\]"),
}


class _DropMatching(logging.Filter):
    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not self.pattern.search(record.getMessage())
        except Exception:
            return True


def quiet_known_messages() -> None:
    """Install the filters (idempotent)."""
    for name, pattern in _KNOWN.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMatching) and f.pattern is pattern for f in logger.filters):
            logger.addFilter(_DropMatching(pattern))
    from transformers.utils import logging as transformers_logging  # (after the filters exist)

    transformers_logging.disable_progress_bar()
