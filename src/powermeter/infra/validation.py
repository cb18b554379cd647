"""Input checks shared by every capability: no booleans where a number is expected, no control
characters in names and ids, bounds on integers that reach SQL or the clock.

Pydantic's lax mode turns JSON ``true`` into ``1``/``1.0``; :data:`NoBool` refuses it while keeping
the rest of lax mode (``5.0`` for an int field, ``5`` for a float field). :func:`clean_text` refuses
C0/C1 control characters (NUL, ESC and so ANSI escape sequences, BEL, DEL…) in names and ids, which
would otherwise reach terminals (``powermeter keys list``), logs and CSV exports.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

#: Epoch milliseconds up to 9999-12-31T23:59:59.999Z (the last instant ISO 8601 / Python dates name).
MAX_EPOCH_MS = 253_402_300_799_999
#: Pagination offsets and counts: a signed 32-bit integer (far beyond any stored list).
MAX_OFFSET = 2**31 - 1

_CONTROL_CLASS = r"\x00-\x1f\x7f-\x9f"  # Unicode category Cc: C0, DEL, C1
_CONTROL = re.compile(f"[{_CONTROL_CLASS}]")
#: A JSON Schema / pydantic ``pattern`` (checked in pydantic-core, no Python call) for names and ids.
NO_CONTROL_PATTERN = f"^[^{_CONTROL_CLASS}]*$"
CONTROL_MESSAGE = "must not contain control characters (NUL, ANSI escape sequences, line breaks, tabs…)"


def _reject_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("must be a number, not true/false")
    return v


def has_control(s: str) -> bool:
    """True when ``s`` holds a control character (C0, DEL, C1) or a bidirectional override."""
    return _CONTROL.search(s) is not None


def clean_text(s: str) -> str:
    if has_control(s):
        raise ValueError(CONTROL_MESSAGE)
    return s


def escape_control(s: str) -> str:
    """``s`` with every control character written as a visible escape (``\\x1b``), for terminals."""

    def esc(m: re.Match[str]) -> str:
        c = m.group(0)
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _CONTROL.sub(esc, s)


NoBool = BeforeValidator(_reject_bool)
CleanText = AfterValidator(clean_text)
Text = Annotated[str, CleanText]
