"""Load a compressed dump into a database with the `mariadb` client.

Decompression happens here (zlib) rather than in `gzip -d`, so that a truncated or
corrupt stream is detected exactly, and the dump's completion trailer can be checked.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import zlib
from pathlib import Path

from .config import Connection, User
from .db import options_fd
from .definer import DefinerRewriter
from .errors import LoadError

CHUNK = 1 << 20
TRAILER = b"-- Dump completed"
CLIENT_OPTIONS = ("--batch", "--binary-mode", "--max-allowed-packet=1G")


def load_file(
    client_command: str,
    conn: Connection,
    user: User,
    database: str,
    path: Path,
    timeout: float = 3600.0,
) -> None:
    """Feed the gzip-compressed SQL in `path` into `database`; LoadError names what failed."""
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
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            problem = _feed(path, proc.stdin)
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


def _feed(path: Path, stdin) -> str:
    """Decompress `path` into `stdin`; return a problem ('' when the stream was whole)."""
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    definers = DefinerRewriter()  # no SET USER needed (jobs/definer.py)
    tail = b""
    try:
        with open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                data = decomp.decompress(chunk)
                if data:
                    stdin.write(definers.feed(data))
                    tail = (tail + data[-256:])[-256:]
                if decomp.eof and (decomp.unused_data or src.read(1)):
                    return "trailing data after the end of the compressed stream"
        stdin.write(definers.flush())
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
