"""Re-create views, triggers, routines and events as the loading account (`DEFINER=CURRENT_USER`).

Loading an object whose DEFINER is another account needs `SET USER` (or `SUPER`), and an
account holding it can create a procedure that runs as root: it is root-equivalent. So the
loader rewrites each definer to the account doing the load, as `mysqlpump --skip-definer`
does. Only a DEFINER clause that opens a statement line (no quote before it) is rewritten:
the lines mariadb-dump writes for those objects, never the inside of a string in the data.
"""

from __future__ import annotations

import re

_DEFINER = re.compile(rb"(?m)^([^'\"\n]*?)DEFINER=`(?:[^`\n]|``)*`@`(?:[^`\n]|``)*`")
_REPLACEMENT = rb"\1DEFINER=CURRENT_USER"


def rewrite(text: bytes) -> bytes:
    """`text` (whole lines) with each statement's DEFINER=`user`@`host` made CURRENT_USER."""
    if b"DEFINER=" not in text:
        return text
    return _DEFINER.sub(_REPLACEMENT, text)


class DefinerRewriter:
    """Streaming rewrite(): feed chunks, get whole rewritten lines back, flush() at the end."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> bytes:
        """The rewritten complete lines so far; a trailing partial line waits for the next chunk."""
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            self._partial += data
            return b""
        whole = self._partial + data[:cut] if self._partial else data[:cut]
        self._partial = data[cut:]
        return rewrite(whole)

    def flush(self) -> bytes:
        """The last, unterminated line, rewritten."""
        rest, self._partial = self._partial, b""
        return rewrite(rest)
