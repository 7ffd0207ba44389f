"""Who may post webhooks and change state: a bearer token or HTTP Basic, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from .config import AuthConfig

CHALLENGES = ('Bearer realm="stackmedic"', 'Basic realm="stackmedic", charset="UTF-8"')


def _same(given: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def authorized(header: str | None, auth: AuthConfig) -> bool:
    """True when the Authorization header carries the configured credentials.

    A bearer token may also be given as the password of HTTP Basic (any user name), for
    senders that only do Basic.
    """
    if auth.none:
        return True
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return _same(value, auth.bearer_token)
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not sep:
        return False
    if auth.basic_password is not None:
        user_ok = _same(user, auth.basic_username)
        password_ok = _same(password, auth.basic_password)
        if user_ok and password_ok:
            return True
    return _same(password, auth.bearer_token)
