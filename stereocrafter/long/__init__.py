"""The long-video family: which fields each task takes (``tasks``), the pure alignment maths
(``align``), the segment orchestrator (``segments``), the same over two Batch Transform jobs
(``batch``) and the local ``convert-long`` (``local``). ``tasks``, ``align``, ``segments`` and
``batch`` import no torch: the video-worker's client and the deploy CLI run them."""
