"""``serving.pool``: one conversion slot per visible GPU, each job on a free one."""

from __future__ import annotations

import pytest

from stereocrafter.errors import DeviceUnavailableError


def test_one_slot_per_visible_gpu() -> None:
    from stereocrafter.serving.gpu import slot_devices

    assert slot_devices("cuda", None, gpu_count=4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert slot_devices("cuda", 2, gpu_count=8) == ["cuda:0", "cuda:1"]
    assert slot_devices("cuda", None, gpu_count=1) == ["cuda:0"]
    with pytest.raises(DeviceUnavailableError, match="STEREOCRAFTER_SLOTS=3 but only 2 GPUs"):
        slot_devices("cuda", 3, gpu_count=2)
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        slot_devices("cuda", None, gpu_count=0)
    assert slot_devices("cpu", None) == ["cpu"] and slot_devices("cpu", 2) == ["cpu", "cpu"]
    with pytest.raises(ValueError, match=">= 1"):
        slot_devices("cpu", 0)


def test_the_pool_gives_each_job_a_free_slot() -> None:
    import threading

    from stereocrafter.serving.pool import PipelinePool, Slot

    pool = PipelinePool([Slot(0, "cuda:0", "p0"), Slot(1, "cuda:1", "p1")])
    held: list[int] = []
    with pool.acquire() as a, pool.acquire() as b:
        held += [a.index, b.index]
        assert pool.free == 0
        waiter_got: list[int] = []
        waiter = threading.Thread(target=lambda: waiter_got.append(pool.acquire().__enter__().index))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # no slot free: it waits
    waiter.join(5)
    assert sorted(held) == [0, 1] and waiter_got and waiter_got[0] in (0, 1)
