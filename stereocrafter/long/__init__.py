"""The long-video family: which fields each task takes (``tasks``), the pure alignment maths
(``align``), the segment orchestrator (``segments``) and the local ``convert-long`` (``local``).
``tasks``, ``align`` and ``segments`` import no torch: the video-worker's client runs them."""
