"""Names of the scratch databases, and the clean-up of those a killed job left behind.

Verify and restore load into scratch databases under two different prefixes, so that the
verify account (granted on its prefix only) can never reach the copy a restore is about
to swap in. A verify scratch name carries a tag of its database
(`stackmedic_verify_<8 hex of sha256(db)>_<12 random hex>`): the next verify of the same
database, which holds that database's lock, drops the leftovers of its own database only,
never the scratch of another database's verify that is running at the same moment.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid

from . import db as dbc

log = logging.getLogger(__name__)

VERIFY_PREFIX = "stackmedic_verify_"
RESTORE_PREFIX = "stackmedic_restore_"


def grant_pattern(prefix: str) -> str:
    """`prefix` as a GRANT database pattern: `_` escaped, `%` appended (`stackmedic\\_verify\\_%`)."""
    return prefix.replace("_", "\\_") + "%"


def _tag(database: str) -> str:
    return hashlib.sha256(database.encode("utf-8")).hexdigest()[:8]


def verify_scratch_name(database: str) -> str:
    """A fresh scratch database name for verifying a backup of `database` (39 characters)."""
    return f"{VERIFY_PREFIX}{_tag(database)}_{uuid.uuid4().hex[:12]}"


def is_verify_scratch_of(name: str, database: str) -> bool:
    """True when `name` is a verify scratch database of `database`."""
    return re.fullmatch(re.escape(f"{VERIFY_PREFIX}{_tag(database)}_") + "[0-9a-f]{12}", name) is not None


def drop_verify_leftovers(cursor, database: str) -> list[str]:
    """Drop the verify scratch databases of `database` that a killed verify left; their names.

    Call it holding the database's lock: no verify of `database` runs then.
    """
    like = grant_pattern(f"{VERIFY_PREFIX}{_tag(database)}_")
    cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s", (like,))
    found = sorted(row[0] for row in cursor.fetchall() if is_verify_scratch_of(row[0], database))
    for name in found:
        cursor.execute(f"DROP DATABASE IF EXISTS {dbc.quote_ident(name)}")
        log.warning(
            "dropped a scratch database left by a killed verify database=%s scratch=%s", database, name
        )
    return found
