"""Who may post webhooks and change state: a bearer token, or HTTP Basic for the webhook
only when the operator configured `auth.basic_auth`; compared in constant time.

Basic is never advertised (the challenge names Bearer only): a browser that was never
asked for Basic credentials never keeps any, so no page of another site can borrow them.
Failed attempts are counted by reason and logged at most once a minute.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from stackmedic import failed_logins

from .config import AuthConfig

log = logging.getLogger(__name__)

CHALLENGE = 'Bearer realm="stackmedic"'
REASONS = ("missing", "malformed", "bad_credentials", "basic_not_allowed", "revoked")
# what the 401 says (the credential itself never appears in an answer or a log)
EXPLAINED = {
    "missing": "no credentials: send Authorization: Bearer <token>",
    "malformed": "malformed Authorization header",
    "bad_credentials": "unknown token or wrong credentials",
    "basic_not_allowed": "Basic credentials are not accepted here: send a bearer token",
    "revoked": "this token is revoked",
}


@dataclass(frozen=True)
class Verdict:
    """One request's credentials: accepted (`reason` None) with the token's name, or why not."""

    reason: str | None
    name: str | None = None  # the named token, the Basic user; None for the unnamed token


def _same(given: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def _bearer(value: str, auth: AuthConfig) -> Verdict:
    # every token is compared, whichever matches: the time taken says nothing about which
    matches = [t for t in auth.tokens if _same(value, t.token)]
    unnamed = _same(value, auth.bearer_token)
    if matches:
        token = matches[0]
        return Verdict("revoked", token.name) if token.revoked else Verdict(None, token.name)
    return Verdict(None) if unnamed else Verdict("bad_credentials")


def check(header: str | None, auth: AuthConfig, basic_allowed: bool) -> Verdict:
    """Whether the Authorization header carries configured credentials, and whose.

    `basic_allowed`: the webhook accepts the configured Basic user; operator writes never do.
    """
    if auth.none:
        return Verdict(None)
    if not header:
        return Verdict("missing")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return _bearer(value, auth)
    if scheme.lower() != "basic":
        return Verdict("malformed")
    if not basic_allowed or auth.basic_password is None:
        return Verdict("basic_not_allowed")
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except ValueError:  # binascii.Error, and a non-ASCII byte of a Latin-1 header: malformed
        return Verdict("malformed")
    if not sep:
        return Verdict("malformed")
    user_ok = _same(user, auth.basic_username)
    password_ok = _same(password, auth.basic_password)
    return Verdict(None, auth.basic_username) if user_ok and password_ok else Verdict("bad_credentials")


def failure(header: str | None, auth: AuthConfig, basic_allowed: bool) -> str | None:
    """None when the Authorization header carries the configured credentials, else why not."""
    return check(header, auth, basic_allowed).reason


def authorized(header: str | None, auth: AuthConfig, basic_allowed: bool = True) -> bool:
    """True when the header carries the configured credentials."""
    return failure(header, auth, basic_allowed) is None


class FailureLog(failed_logins.FailureLog):
    """stackmedic.failed_logins.FailureLog, logging as this module."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(interval, clock, log)
