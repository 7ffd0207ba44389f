"""Secrets come from a file or the environment, never from the YAML itself in clear."""

from __future__ import annotations

import os
from pathlib import Path


class SecretError(Exception):
    """A configured secret could not be read; the message never contains the secret.

    Nor the file name or variable name given: an operator who pastes the secret itself into
    `password_file` or `token_env` must not find it printed in a log or a CI job's output.
    The key path that the caller puts before the message says where to look.
    """


def resolve_secret(
    value: str | None = None, *, env: str | None = None, file: str | None = None
) -> str | None:
    """Return the secret from `file` (stripped of one trailing newline), `env`, or `value`.

    The first one configured wins, in that order. Returns None when none is configured.
    """
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"cannot read the secret file (path not shown): {exc.strerror}") from None
        return text[:-1] if text.endswith("\n") else text
    if env:
        if env not in os.environ:
            raise SecretError("the environment variable is not set (name not shown)")
        return os.environ[env]
    return value


class Secret(str):
    """A str whose repr and str-formatting in logs do not show it."""

    def __repr__(self) -> str:
        return "Secret('***')"
