"""bench/traffic.py's counter: what an op reads and writes, and what the issue's rule lists."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bench.traffic import Traffic

N = 1000  # float32 elements: 4000 bytes a tensor


def counted(call: Callable[[], object]) -> dict[str, float]:
    counter = Traffic()
    with counter:
        call()
    return counter.figures["other"]


@pytest.mark.parametrize(
    ("name", "call", "moved", "listed"),
    [
        # read two, write one; listed: the out= tensor handed and returned
        ("out=", lambda a, b, o: torch.mul(a, b, out=o), 3, 4),
        ("a * b", lambda a, b, o: a * b, 3, 3),
        ("add_", lambda a, b, o: a.add_(b), 3, 3),  # reads its target and b, writes its target
        ("clamp_", lambda a, b, o: a.clamp_(0, 1), 2, 2),
        ("copy_", lambda a, b, o: o.copy_(a), 2, 3),  # reads a, writes o
        ("fill_", lambda a, b, o: o.fill_(1.0), 1, 2),  # writes o
        ("empty", lambda a, b, o: torch.empty(N), 0, 1),  # an allocation moves nothing
    ],
)
def test_an_op_moves_what_it_reads_and_writes(name: str, call: Callable, moved: int, listed: int) -> None:
    a, b, o = torch.ones(N), torch.ones(N), torch.empty(N)
    figures = counted(lambda: call(a, b, o))
    assert figures["ops"] == 1 and figures["syncs"] == 0
    assert (figures["bytes"], figures["listed"]) == (moved * 4 * N, listed * 4 * N), name


def test_views_are_free_expanded_tensors_count_once_and_syncs_are_counted() -> None:
    a = torch.ones(N)
    figures = counted(lambda: a.view(10, 100).t()[::2] + torch.ones(1).expand(50, 10))
    assert figures["ops"] == 2  # the ones and the add; the views are no ops
    assert figures["bytes"] == 4 + (500 + 1 + 500) * 4
    assert counted(lambda: bool(a.any()))["syncs"] == 1
    assert counted(lambda: a.nonzero())["syncs"] == 1


def test_a_gather_reads_a_sector_per_element_at_most_and_never_more_than_its_source() -> None:
    source, few, many = torch.ones(100 * N), torch.arange(10), torch.arange(100 * N)
    figures = counted(lambda: source[few])
    assert figures["bytes"] == 10 * 32 + 8 * 10 + 4 * 10  # sectors, the indices, the result
    assert figures["listed"] == 4 * 100 * N + 8 * 10 + 4 * 10
    whole = counted(lambda: torch.gather(source, 0, many))["bytes"]
    assert whole == 4 * 100 * N + 8 * 100 * N + 4 * 100 * N


def test_a_scatter_counts_the_rows_it_writes_not_its_whole_target() -> None:
    target, index, values = torch.zeros(10 * N), torch.arange(N), torch.ones(N)
    figures = counted(lambda: target.index_add_(0, index, values))
    # the index (8 bytes each), the values read, and the rows read and written
    assert figures["bytes"] == figures["listed"] == 8 * N + 3 * 4 * N
