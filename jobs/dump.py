"""A consistent, compressed dump of one database, streamed to a file with its SHA-256.

`mariadb-dump --single-transaction` (one snapshot, no table locks for InnoDB) piped into
`gzip` in a subprocess: dump, compression and our hashing and writing run on separate
cores, and nothing is held in memory. The file is written under a `.tmp-` name, fsynced,
and renamed only when both programs exited 0.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from .config import Connection, User
from .db import options_fd
from .errors import DumpError
from .fsutil import fsync_dir, tmp_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DUMP_OPTIONS = (
    "--single-transaction",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--no-tablespaces",
    "--default-character-set=utf8mb4",
)


@dataclass(frozen=True)
class DumpResult:
    size_bytes: int
    sha256: str


def dump_argv(
    dump_command: str,
    defaults_arg: str,
    database: str,
    tables: list[str] | None = None,
    binlog: bool = False,
) -> list[str]:
    """The dump's command line: no password on it, the database (and `tables`) as positional arguments.

    Without `--databases` the dump has no CREATE DATABASE / USE, so it loads into any name
    (the scratch database of verify, or the target of restore). With `binlog`, the dump's
    header records the binary log position of its snapshot (`--master-data=2`, a comment):
    MariaDB takes it from the snapshot itself, without FLUSH TABLES WITH READ LOCK.
    """
    # --defaults-extra-file must come first.
    extra = ["--master-data=2"] if binlog else []
    return [dump_command, defaults_arg, *DUMP_OPTIONS, *extra, database, *(tables or [])]


def _stderr_text(handle) -> str:
    handle.seek(0)
    text = handle.read().decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else ""


def dump_to_file(
    dump_command: str,
    conn: Connection,
    user: User,
    database: str,
    dest: Path,
    level: int = 6,
    timeout: float = 3600.0,
    tables: list[str] | None = None,
    binlog: bool = False,
) -> DumpResult:
    """Dump `database` (only `tables`, when given) gzip-compressed to `dest` (via `.tmp-<name>` and a rename)."""
    tmp = tmp_path(dest)
    tmp.unlink(missing_ok=True)  # the leftover of a killed run; we hold the lock
    with (
        options_fd(conn, user) as (fd, defaults_arg),
        tempfile.TemporaryFile() as dump_err,
        tempfile.TemporaryFile() as gzip_err,
    ):
        try:
            dump = subprocess.Popen(
                dump_argv(dump_command, defaults_arg, database, tables, binlog),
                stdout=subprocess.PIPE,
                stderr=dump_err,
                stdin=subprocess.DEVNULL,
                pass_fds=(fd,),
            )
        except OSError as exc:
            raise DumpError(f"cannot run {dump_command}: {exc.strerror}") from None
        gz = subprocess.Popen(
            ["gzip", "-c", "-n", f"-{level}"], stdin=dump.stdout, stdout=subprocess.PIPE, stderr=gzip_err
        )
        assert dump.stdout is not None and gz.stdout is not None  # stdout=PIPE
        dump.stdout.close()  # gzip holds the only read end: dump gets SIGPIPE if gzip dies
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            dump.kill()
            gz.kill()

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            result = _write(gz.stdout, tmp)
            gz.stdout.close()
            dump_rc, gz_rc = dump.wait(), gz.wait()
        except BaseException:
            dump.kill()
            gz.kill()
            dump.wait()
            gz.wait()
            tmp.unlink(missing_ok=True)
            raise
        finally:
            timer.cancel()
        if dump_rc != 0 or gz_rc != 0:
            tmp.unlink(missing_ok=True)
            if timed_out.is_set():
                raise DumpError(f"dump of {database} timed out after {timeout:g}s")
            reason = _stderr_text(dump_err) or _stderr_text(gzip_err) or f"exit statuses {dump_rc}, {gz_rc}"
            raise DumpError(f"dump of {database} failed: {reason}")
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    log.info("dump written database=%s file=%s size_bytes=%d", database, dest.name, result.size_bytes)
    return result


def _write(stream, tmp: Path) -> DumpResult:
    sha = hashlib.sha256()
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DumpError(f"cannot write {tmp.name}: {exc.strerror}") from None
    return DumpResult(size, sha.hexdigest())


_POSITION = re.compile(rb"^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+);", re.M)


def binlog_position(path: Path, head: int = 1 << 16) -> tuple[str, int] | None:
    """(file, position) that `--master-data=2` wrote near the top of the dump at `path`, or None."""
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as f:
        text = decomp.decompress(f.read(head), head * 4)
    m = _POSITION.search(text)
    return (m.group(1).decode(), int(m.group(2))) if m else None
