"""``echo``: caller-supplied values in messages and logs, quoted, escaped and bounded."""

from __future__ import annotations

from stereocrafter.echo import bounded, echo, inert


def test_a_value_is_quoted_escaped_and_cut() -> None:
    assert echo("a.mp4") == "'a.mp4'"
    assert echo("a\nb") == "'a\\x0ab'"  # a newline cannot start a new log line
    long = echo("x" * 100_000, limit=20)
    assert long.startswith("'" + "x" * 20 + "…'") and "100000 characters" in long and len(long) < 80


def test_a_message_is_made_inert_and_bounded() -> None:
    assert inert("ok") == "ok" and inert("\x1b[31mred") == "\\x1b[31mred"  # the escape shown, not sent
    assert bounded("y" * 500, limit=10) == "y" * 9 + "…"
