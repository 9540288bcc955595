"""What a database error means for the caller, read from the engine's own error code.

PostgreSQL's SQLSTATE, MySQL/MariaDB's error number and SQLite's result code name say
whether a failed transaction lost a conflict (retry it now), was refused (disk full,
read-only: no retry helps until an operator acts), or never reached a working database
(retry later). Error texts are not read: they are translated on some servers, and a
value quoted in one could mimic another kind of error.
"""

from __future__ import annotations

import enum
from typing import Any


class Failure(enum.Enum):
    CONFLICT = "conflict"  # deadlock, lock timeout, serialization failure
    REFUSED = "refused"  # the database is up but will not write: full, read-only, I/O
    UNAVAILABLE = "unavailable"  # no usable connection: down, restarting, overloaded
    OTHER = "other"  # anything else the database rejected (a bug, a bad value)


#: PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
PG_CODES: dict[str, Failure] = {
    "40001": Failure.CONFLICT,  # serialization_failure
    "40P01": Failure.CONFLICT,  # deadlock_detected
    "55P03": Failure.CONFLICT,  # lock_not_available
    "53100": Failure.REFUSED,  # disk_full
    "25006": Failure.REFUSED,  # read_only_sql_transaction
    "58030": Failure.REFUSED,  # io_error
    "53200": Failure.UNAVAILABLE,  # out_of_memory
    "53300": Failure.UNAVAILABLE,  # too_many_connections
    "57014": Failure.UNAVAILABLE,  # query_canceled (statement_timeout)
    "57P01": Failure.UNAVAILABLE,  # admin_shutdown
    "57P02": Failure.UNAVAILABLE,  # crash_shutdown
    "57P03": Failure.UNAVAILABLE,  # cannot_connect_now
    "25P03": Failure.UNAVAILABLE,  # idle_in_transaction_session_timeout
}
#: Whole SQLSTATE classes.
PG_CLASSES: dict[str, Failure] = {
    "08": Failure.UNAVAILABLE,  # connection exception
    "28": Failure.UNAVAILABLE,  # invalid authorization (a wrong password is not a bad event)
    "3D": Failure.UNAVAILABLE,  # invalid catalog name (no such database)
    "40": Failure.CONFLICT,  # transaction rollback
    "53": Failure.UNAVAILABLE,  # insufficient resources (disk_full is above)
    "57": Failure.UNAVAILABLE,  # operator intervention (shutdown, cancel)
    "58": Failure.REFUSED,  # system error (I/O)
}

#: MySQL/MariaDB server and client error numbers.
MYSQL_CODES: dict[int, Failure] = {
    1205: Failure.CONFLICT,  # ER_LOCK_WAIT_TIMEOUT
    1213: Failure.CONFLICT,  # ER_LOCK_DEADLOCK
    3: Failure.REFUSED,  # ER_ERROR_ON_WRITE
    1021: Failure.REFUSED,  # ER_DISK_FULL
    1030: Failure.REFUSED,  # ER_GET_ERRNO (e.g. error 28 from the storage engine)
    1114: Failure.REFUSED,  # ER_RECORD_FILE_FULL ("The table ... is full")
    1290: Failure.REFUSED,  # ER_OPTION_PREVENTS_STATEMENT (--read-only)
    1792: Failure.REFUSED,  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    1836: Failure.REFUSED,  # ER_READ_ONLY_MODE
    1040: Failure.UNAVAILABLE,  # ER_CON_COUNT_ERROR (too many connections)
    1044: Failure.UNAVAILABLE,  # ER_DBACCESS_DENIED_ERROR
    1045: Failure.UNAVAILABLE,  # ER_ACCESS_DENIED_ERROR
    1049: Failure.UNAVAILABLE,  # ER_BAD_DB_ERROR (no such database)
    1053: Failure.UNAVAILABLE,  # ER_SERVER_SHUTDOWN
    1927: Failure.UNAVAILABLE,  # ER_CONNECTION_KILLED (MariaDB)
    4031: Failure.UNAVAILABLE,  # ER_CLIENT_INTERACTION_TIMEOUT
}
#: 2000-2999 are the client library's own errors (CR_*): cannot connect, server gone, lost.
MYSQL_CLIENT_ERRORS = range(2000, 3000)

#: SQLite primary result codes, by name (extended codes share their prefix: SQLITE_IOERR_WRITE).
SQLITE_CODES: dict[str, Failure] = {
    "SQLITE_BUSY": Failure.CONFLICT,
    "SQLITE_LOCKED": Failure.CONFLICT,
    "SQLITE_FULL": Failure.REFUSED,
    "SQLITE_READONLY": Failure.REFUSED,
    "SQLITE_IOERR": Failure.REFUSED,
    "SQLITE_CORRUPT": Failure.REFUSED,
    "SQLITE_NOTADB": Failure.REFUSED,
    "SQLITE_PERM": Failure.REFUSED,
    "SQLITE_CANTOPEN": Failure.UNAVAILABLE,
    "SQLITE_NOMEM": Failure.UNAVAILABLE,
}


def classify(orig: Any) -> Failure | None:
    """The kind of ``orig`` (a DB-API exception) by its engine's code; None without one
    (an error of the client library itself, such as a connection already closed)."""
    args = getattr(orig, "args", ())
    if args and type(args[0]) is int:  # PyMySQL: (errno, message); its sqlstate is MySQL's
        if args[0] in MYSQL_CLIENT_ERRORS:
            return Failure.UNAVAILABLE
        return MYSQL_CODES.get(args[0], Failure.OTHER)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return PG_CODES.get(sqlstate) or PG_CLASSES.get(sqlstate[:2], Failure.OTHER)
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        for prefix, failure in SQLITE_CODES.items():
            if name == prefix or name.startswith(prefix + "_"):
                return failure
        return Failure.OTHER
    return None
