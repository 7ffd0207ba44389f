"""Load a compressed dump into a database with the `mariadb` client.

Decompression happens here (zlib) rather than in `gzip -d`, so that a truncated or
corrupt stream is detected exactly, and the dump's completion trailer can be checked.
A table-level restore loads only some tables: `TableFilter` keeps the dump's sections
(`-- Table structure for table`, `-- Dumping data for table`) of those tables and drops
views, routines and events, which belong to the whole database.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import threading
import zlib
from pathlib import Path

from .config import Connection, User
from .db import options_fd
from .definer import DefinerRewriter
from .errors import LoadError
from .progress import Progress

CHUNK = 1 << 20
TRAILER = b"-- Dump completed"
CLIENT_OPTIONS = ("--batch", "--binary-mode", "--max-allowed-packet=1G")
_SECTION = re.compile(
    rb"^-- (Table structure for table|Dumping data for table|Temporary table structure for view"
    rb"|Final view structure for view|Dumping events for database|Dumping routines for database) (.*)$"
)
_TABLE_SECTIONS = (b"Table structure for table", b"Dumping data for table")


class TableFilter:
    """Keeps the parts of a mariadb-dump stream that belong to `tables` (and the header and footer)."""

    def __init__(self, tables: set[str]):
        self.tables = {t.encode("utf-8") for t in tables}
        self.keep = True
        self.partial = b""

    def feed(self, data: bytes) -> bytes:
        """The kept bytes of `data` (lines are reassembled across chunks)."""
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        out = []
        for line in lines:
            if line.startswith(b"-- "):
                m = _SECTION.match(line)
                if m:
                    name = m.group(2).strip().strip(b"`'").replace(b"``", b"`")
                    self.keep = m.group(1) in _TABLE_SECTIONS and name in self.tables
            if self.keep or line.startswith(b"--"):
                out.append(line)
        return b"\n".join(out) + b"\n" if out else b""

    def flush(self) -> bytes:
        rest, self.partial = self.partial, b""
        return rest if self.keep else b""


def load_file(
    client_command: str,
    conn: Connection,
    user: User,
    database: str,
    path: Path,
    timeout: float = 3600.0,
    tables: set[str] | None = None,
    progress: Progress | None = None,
) -> None:
    """Feed the gzip-compressed SQL in `path` into `database` (only `tables` when given).

    LoadError names what failed.
    """
    with options_fd(conn, user) as (fd, defaults_arg), tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                [client_command, defaults_arg, *CLIENT_OPTIONS, database],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=(fd,),
            )
        except OSError as exc:
            raise LoadError(f"cannot run {client_command}: {exc.strerror}") from None
        assert proc.stdin is not None  # stdin=PIPE
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            problem = _feed(path, proc.stdin, TableFilter(tables) if tables is not None else None, progress)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        if problem:
            proc.kill()
            proc.wait()
            with contextlib.suppress(OSError):
                proc.stdin.close()
            raise LoadError(problem)
        rc = proc.wait()
        if rc != 0:
            err.seek(0)
            lines = err.read().decode("utf-8", "replace").strip().splitlines()
            raise LoadError(f"loading into {database} failed: {lines[-1] if lines else f'exit status {rc}'}")


def _feed(path: Path, stdin, keep: TableFilter | None = None, progress: Progress | None = None) -> str:
    """Decompress `path` into `stdin`; return a problem ('' when the stream was whole)."""
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    definers = DefinerRewriter()  # no SET USER needed (jobs/definer.py)
    tail = b""
    try:
        with open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                data = decomp.decompress(chunk)
                if data:
                    tail = (tail + data[-256:])[-256:]
                    data = definers.feed(data)
                    stdin.write(keep.feed(data) if keep else data)
                if progress:
                    progress.add(len(chunk))
                if decomp.eof and (decomp.unused_data or src.read(1)):
                    return "trailing data after the end of the compressed stream"
        rest = definers.flush()
        stdin.write((keep.feed(rest) + keep.flush()) if keep else rest)
        stdin.close()
    except zlib.error as exc:
        return f"corrupt compressed data: {exc}"
    except BrokenPipeError:
        return ""  # the client stopped reading: its exit status and stderr say why
    except OSError as exc:
        return f"cannot read {path.name}: {exc.strerror}"
    if not decomp.eof:
        return "compressed stream is truncated"
    if TRAILER not in tail:
        return "dump is incomplete: no completion line at its end"
    return ""
