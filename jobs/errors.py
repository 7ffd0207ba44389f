"""Exit statuses of `stackmedic-job` and the exceptions that carry them.

Every refusal has its own status so that Jenkins (and the receiver, which records the
build result) can tell a server that is down from a backup that is missing.
"""

from __future__ import annotations

OK = 0
FAILED = 1  # the job ran and failed: a dump, a load, a container that did not come up
USAGE = 2  # invalid configuration, unknown database or service, bad arguments
SERVER_DOWN = 3  # the database server does not answer: a restore cannot fix that
NO_VALID_BACKUP = 4  # no complete backup exists, or none of them verifies
LOCKED = 5  # another backup, verify, restore or prune holds the lock
ROLLED_BACK = 6  # restart: the new container did not come up; the known-good image runs again

EXIT_CODES = {
    OK: "ok",
    FAILED: "failed",
    USAGE: "invalid configuration or usage",
    SERVER_DOWN: "database server down",
    NO_VALID_BACKUP: "no valid backup",
    LOCKED: "locked by another job",
    ROLLED_BACK: "rolled back to the known-good image",
}


class JobError(Exception):
    """A job that cannot do its work; `exit_code` says why, the message says it in one line."""

    exit_code = FAILED

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(JobError):
    """A database or service that is not configured, or arguments that do not fit."""

    exit_code = USAGE


class ServerDown(JobError):
    """The database server does not answer."""

    exit_code = SERVER_DOWN


class NoValidBackup(JobError):
    """No complete backup, or none that verifies."""

    exit_code = NO_VALID_BACKUP


class Locked(JobError):
    """Another job holds the backup directory's lock."""

    exit_code = LOCKED


class DumpError(JobError):
    """mariadb-dump, gzip or the write of the dump failed."""


class LoadError(JobError):
    """Loading a dump into a database failed."""


class ContainerError(JobError):
    """A container could not be found, started, stopped or did not come up."""
