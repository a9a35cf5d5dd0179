"""The JDBC URL and properties of a client's connection, for engines that read through JDBC."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from pyrec_pg.db import Db
from pyrec_pg.errors import FeatureNotSupported

# libpq's settings that pgjdbc takes under the same name and meaning
PASSED_ON = ("sslmode", "sslrootcert")


@dataclass(frozen=True)
class Jdbc:
    """Where a JDBC client reaches the database `Db` is connected to, as that connection did
    (the host and port it reached, its user and the password it used, from the DSN, the
    environment or .pgpass)."""

    url: str
    properties: tuple[tuple[str, str], ...]  # user, password, ...: never logged or stored


def jdbc_of(db: Db, application: str) -> Jdbc:
    """The JDBC form of `db`'s connection; refused for a Unix socket, which pgjdbc cannot
    use, and inside the server, which has no client connection."""
    conn = getattr(db.plpy, "conn", None)
    if conn is None:
        raise FeatureNotSupported(
            "reading through JDBC needs a client connection, and this runs in the server",
            hint="train with the external trainer: pyrec train MODEL --dsn ...",
        )
    info = conn.info
    host = str(info.host)
    if not host or host.startswith("/") or host.startswith("@"):
        raise FeatureNotSupported(
            f"reading through JDBC needs a TCP connection, and the reading connection uses the"
            f" Unix socket in {host or 'the default directory'}",
            hint="connect over TCP, with host=NAME port=N in --dsn (or in --read-dsn to read"
            " from a standby), at an address Spark's executors can reach",
        )
    address = f"[{host}]" if ":" in host else host
    url = f"jdbc:postgresql://{address}:{info.port}/{quote(str(info.dbname), safe='')}"
    props = {"user": str(info.user), "ApplicationName": application}
    if info.password:
        props["password"] = str(info.password)
    given = info.get_parameters()
    props.update({k: given[k] for k in PASSED_ON if given.get(k)})
    return Jdbc(url, tuple(sorted(props.items())))
