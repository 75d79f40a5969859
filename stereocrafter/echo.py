"""How caller-supplied text may appear in an error message or a log line: bounded and inert.

A caller controls the URIs, field names and values it sends; echoing them raw lets a 100 KB value
come back in a 100 KB message and lets ANSI escapes or newlines rewrite the service log. Every
message and log line that carries caller input goes through ``echo`` (one value) or, as a last
guard, ``bounded`` (a whole message); the loggers of this package also carry ``InertTextFilter``.
This module imports nothing heavy.
"""

from __future__ import annotations

import logging

ECHO_LIMIT = 200  # characters of one caller-supplied value, once escaped
MESSAGE_LIMIT = 1000  # characters of a whole error message


def _escaped(char: str, backslash: bool = True) -> str:
    """One character as it may be shown: itself when printable, else a Python escape (\\x1b);
    with ``backslash`` a backslash is doubled, so that an escape shown is never ambiguous."""
    if char == "\\":
        return "\\\\" if backslash else char
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def inert(text: str) -> str:
    """``text`` with every non-printable character (C0/C1 controls, DEL, line and paragraph
    separators, bidi overrides, lone surrogates, ...) escaped; no length cap."""
    if text.isprintable():
        return text
    return "".join(_escaped(c, backslash=False) for c in text)


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """A caller-supplied value for a message: quoted, escaped, at most ``limit`` characters of it
    (escapes included), then an ellipsis and the value's full length. A trailing newline shows as
    ``\\x0a``; a 100,000-character value costs about 250 characters."""
    text = value if isinstance(value, str) else repr(value)
    pieces: list[str] = []
    used = 0
    for index, char in enumerate(text):
        piece = _escaped(char)
        if used + len(piece) > limit:
            return f"'{''.join(pieces)}…' ({len(text)} characters, {len(text) - index} not shown)"
        pieces.append(piece)
        used += len(piece)
    return f"'{''.join(pieces)}'"


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A whole message made inert and cut to ``limit`` characters (the last guard before a caller
    or a log sees it)."""
    text = inert(message)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


class InertTextFilter(logging.Filter):
    """Formats each record once and escapes what is not printable, so no argument (an S3 key, an
    exception text from a library) can put a newline or a terminal escape into the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as logging does
            return True
        cleaned = inert(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with ``InertTextFilter`` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, InertTextFilter) for f in logger.filters):
        logger.addFilter(InertTextFilter())
    return logger
