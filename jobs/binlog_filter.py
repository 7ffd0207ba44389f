"""Choose the binary log events a point-in-time recovery replays, from `mariadb-binlog`'s text.

`mariadb-binlog --rewrite-db=live->scratch` prints every event after the backup's position
as SQL; this filter passes on, transaction by transaction (a GTID event to its COMMIT),
only those that touch the tables being restored in the live database, and stops before
the first destructive one: a DROP/TRUNCATE/RENAME of such a table, a DROP DATABASE, or a
`DELETE FROM t` without WHERE (seen in the Annotate_rows event MariaDB logs by default),
or the first event at or after `until`.

The session settings mariadb-binlog prints only when they change (`SET @@session...`,
`/*!\\C charset */`) are passed on even from skipped transactions, so that the kept ones
run with the settings they ran with; the GTID settings are dropped, so the replayed
writes get new GTIDs of this server instead of reusing old ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

_AT = re.compile(rb"^# at (\d+)\s*$")
_HEADER = re.compile(rb"^#(\d{6}\s+\d{1,2}:\d\d:\d\d) server id \d+\s+end_log_pos \d+\s.*?\t(.*)$")
_ROTATE = re.compile(rb"Rotate to (\S+)\s+pos: (\d+)")
_TABLE_MAP = re.compile(rb"Table_map: `((?:[^`]|``)+)`\.`((?:[^`]|``)+)` mapped")
_USE = re.compile(rb"^use `((?:[^`]|``)+)`/\*!\*/;$")
_GTID_SET = re.compile(
    rb"^/\*M?!10\d{4} SET @@session\.(gtid_domain_id|server_id|gtid_seq_no|skip_parallel_replication)="
)
# Session settings mariadb-binlog prints before a statement, each on one line; never a statement.
_STATE = re.compile(
    rb"^(?:SET (?:TIMESTAMP=|INSERT_ID=|LAST_INSERT_ID=|@@session\.)[^\n]*/\*!\*/;|/\*!\\C [^\n]*\*//\*!\*/;)\s*$"
)
_WORD = r"`?[A-Za-z0-9_$]+`?"
_SCHEMA_DDL = re.compile(
    r"^\s*(?:/\*!\d*\s*)?(?:CREATE|ALTER|DROP|RENAME)\b(?!\s+(?:USER|ROLE|DATABASE|SCHEMA|SERVER)\b)"
    r"|^\s*(?:/\*!\d*\s*)?(?:CREATE|DROP)\s+(?:OR\s+REPLACE\s+)?(?:DEFINER|TEMPORARY|ALGORITHM|SQL)",
    re.I,
)


@dataclass
class Stop:
    """Where the replay stopped and why."""

    file: str
    position: int
    time: datetime | None
    reason: str

    def to_json(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {"file": self.file, "position": self.position, "reason": self.reason}
        if self.time:
            out["time"] = self.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        return out


@dataclass
class _Group:
    lines: list[bytes] = field(default_factory=list)
    position: int = 0
    file: str = ""
    time: datetime | None = None
    ddl: bool = False
    maps: list[tuple[str, str]] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    complete: bool = False


def _ident(name: str) -> str:
    return r"`?" + re.escape(name) + r"`?"


class BinlogFilter:
    """Feed it mariadb-binlog's output line by line; it returns what to pass to the client."""

    def __init__(
        self,
        live: str,
        scratch: str,
        tables: set[str] | None,
        file: str,
        until: datetime | None = None,
        end: tuple[str, int] | None = None,
        sink=None,
    ):
        self.live = live
        self.sink = sink  # called with (statement or '', row lines) for each kept transaction
        self.end = end  # (file, position) where the restore began: its own writes come after
        self.scratch = scratch.encode()
        self.tables = tables  # None: every table of the database
        self.file = file
        self.until = until
        self.position = 0
        self.group: _Group | None = None
        self.stream_db: bytes = b""
        self.emitted_db: bytes = scratch.encode()
        self.stop: Stop | None = None
        self.replayed = 0
        self.last_time: datetime | None = None
        names = "|".join(_ident(t) for t in sorted(tables)) if tables else _WORD
        qualified = rf"(?:{_ident(live)}\.)?"
        self._destructive = re.compile(
            rf"^\s*(?:(?:DROP|TRUNCATE)\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?"
            rf"(?:{_WORD}\s*,\s*)*{qualified}(?:{names})\b"
            rf"|TRUNCATE\s+{qualified}(?:{names})\b"
            rf"|RENAME\s+TABLE\s+(?:.*,\s*)?{qualified}(?:{names})\s+TO\b)",
            re.I | re.S,
        )
        self._drop_db = re.compile(
            rf"^\s*DROP\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+EXISTS\s+)?{_ident(live)}\s*$", re.I
        )
        self._delete_all = re.compile(rf"^\s*DELETE\s+FROM\s+{qualified}(?:{names})\s*;?\s*$", re.I | re.S)
        self._mentions = re.compile(rf"(?<![A-Za-z0-9_$])(?:{names})(?![A-Za-z0-9_$])") if tables else None
        self._qualified_live = re.compile(rf"(?<![A-Za-z0-9_$`]){_ident(live)}\.")

    # -- input -------------------------------------------------------------------------
    def feed(self, line: bytes) -> bytes:
        """Take one line (with its newline); return the bytes to pass on now."""
        if self.stop:
            return b""
        m = _AT.match(line)
        out = b""
        if self.group is not None and self.group.complete and (m or line.startswith(b"DELIMITER ")):
            out = self._close()
            if self.stop:
                return out
        if m:
            self.position = int(m.group(1))
            if self.group is not None:
                self.group.lines.append(line)
                return out
            return out + line
        if out:
            return out + line
        h = _HEADER.match(line)
        if h:
            return self._header(line, h)
        if self.group is None:
            return line  # outside transactions: format description, rotate, comments
        self.group.lines.append(line)
        if line.startswith(b"#Q> "):
            self.group.annotations.append(line[4:].decode("utf-8", "replace"))
        return b""

    def _header(self, line: bytes, h: re.Match) -> bytes:
        kind = h.group(2)
        when = _parse_time(h.group(1))
        self.last_time = when or self.last_time
        rot = _ROTATE.search(kind)
        if rot and self.group is None:
            self.file = rot.group(1).decode()
            return line
        if kind.startswith(b"GTID "):
            out = self._close()
            if self.stop:
                return out
            self.group = _Group([line], self.position, self.file, when, ddl=kind.rstrip().endswith(b"ddl"))
            if self.until and when and when >= self.until:
                self.stop = Stop(self.file, self.position, when, "--until")
                self.group = None
            return out
        if self.group is None:
            return line
        self.group.lines.append(line)
        tm = _TABLE_MAP.search(kind)
        if tm:
            self.group.maps.append((tm.group(1).decode(), tm.group(2).decode()))
        if kind.startswith(b"Xid =") or (self.group.ddl and kind.startswith(b"Query")):
            self.group.complete = True
        return b""

    def finish(self) -> bytes:
        """The end of the stream: pass on the last complete transaction."""
        return self._close()

    # -- decisions -----------------------------------------------------------------------
    def _close(self) -> bytes:
        group, self.group = self.group, None
        if group is None:
            return b""
        body = [ln for ln in group.lines if not _GTID_SET.match(ln)]
        use_lines = [_USE.match(ln.rstrip(b"\n")) for ln in body]
        for m in use_lines:
            if m:
                self.stream_db = m.group(1)
        statement = self._statement(group) if group.ddl else ""
        if self.end and (group.file, group.position) >= self.end:
            self.stop = Stop(group.file, group.position, group.time, "the restore began")
            return b""
        for text in [statement, *group.annotations]:
            if text and (
                self._drop_db.search(text)
                or (
                    (self._destructive.search(text) or self._delete_all.search(text))
                    and self._in_live(group, text)
                )
            ):
                self.stop = Stop(group.file, group.position, group.time, text.strip().splitlines()[0][:200])
                return b""
        keep = self._keep_ddl(group, statement) if group.ddl else self._keep_rows(group)
        if not keep:
            return b"".join(ln for ln in body if _STATE.match(ln))
        self.replayed += 1
        if self.sink is not None:
            rows = [ln.decode("utf-8", "surrogateescape") for ln in group.lines if ln.startswith(b"### ")]
            self.sink(self._rewrite_text(statement) if statement else "", rows)
            return b""
        out = []
        if self.stream_db and self.emitted_db != self.stream_db and not any(use_lines):
            out.append(b"use `" + self.stream_db + b"`/*!*/;\n")
        for ln, m in zip(body, use_lines, strict=True):
            if m:
                self.emitted_db = m.group(1)
            if statement and ln.strip() and not ln.startswith((b"#", b"SET ", b"/*", b"use ")):
                ln = self._rewrite(ln)
            out.append(ln)
        return b"".join(out)

    def _rewrite_text(self, text: str) -> str:
        return self._qualified_live.sub(f"`{self.scratch.decode()}`.", text)

    def _rewrite(self, line: bytes) -> bytes:
        text = line.decode("utf-8", "surrogateescape")
        return self._qualified_live.sub(f"`{self.scratch.decode()}`.", text).encode(
            "utf-8", "surrogateescape"
        )

    def _statement(self, group: _Group) -> str:
        """The SQL text of a DDL group (the lines that are not comments or session settings)."""
        lines = []
        for ln in group.lines:
            if (
                ln.startswith((b"#", b"START TRANSACTION"))
                or _STATE.match(ln)
                or _GTID_SET.match(ln)
                or _USE.match(ln.rstrip(b"\n"))
                or ln.strip() == b"/*!*/;"
            ):
                continue
            lines.append(ln.decode("utf-8", "replace"))
        return "".join(lines).strip()

    def _in_live(self, group: _Group, text: str) -> bool:
        """Whether a statement runs on the live database (it was rewritten to the scratch name)."""
        return self.stream_db == self.scratch or bool(self._qualified_live.search(text))

    def _keep_ddl(self, group: _Group, statement: str) -> bool:
        # Schema changes only: GRANT, CREATE USER, ANALYZE, FLUSH... are not the database's data.
        if not _SCHEMA_DDL.match(statement) or not self._in_live(group, statement):
            return False
        return self._mentions is None or bool(self._mentions.search(statement))

    def _keep_rows(self, group: _Group) -> bool:
        if not group.maps:
            return False
        mine = [t for db, t in group.maps if db.encode() == self.scratch]
        if len(mine) != len(group.maps):
            return False
        return self.tables is None or all(t in self.tables for t in mine)


def _parse_time(text: bytes) -> datetime | None:
    try:
        return datetime.strptime(" ".join(text.decode().split()), "%y%m%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
