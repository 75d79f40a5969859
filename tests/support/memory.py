"""Peak resident memory of a process over a stretch of work, from the kernel's own high-water
mark: writing 5 to /proc/<pid>/clear_refs resets VmHWM to the current VmRSS (Linux >= 4.0), so
VmHWM afterwards is the peak of just that stretch, however briefly it lasted."""

from __future__ import annotations

from pathlib import Path


def _status_mb(pid: int | str, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


class PeakGrowth:
    """``with PeakGrowth(pids) as growth: ...`` then ``growth.mb``: the largest rise of any of
    ``pids`` (default: this process) from its resident size at the start to its peak within."""

    def __init__(self, pids: list[int] | None = None) -> None:
        self.pids: list[int | str] = list(pids) if pids is not None else ["self"]
        self.start: dict[int | str, float] = {}
        self.mb = 0.0

    def __enter__(self) -> PeakGrowth:
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.start[pid] = _status_mb(pid, "VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.mb = max(_status_mb(pid, "VmHWM") - self.start[pid] for pid in self.pids)
