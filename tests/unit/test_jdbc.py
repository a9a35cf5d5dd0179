"""The JDBC form of a client's connection: the host and port it reached, its credentials as
properties, and a Unix socket or the server refused with how to connect instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pyrec_pg.db import Db
from pyrec_pg.db.jdbc import jdbc_of
from pyrec_pg.errors import FeatureNotSupported


@dataclass
class Info:
    host: str
    port: int = 5432
    dbname: str = "shop"
    user: str = "trainer"
    password: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    def get_parameters(self) -> dict[str, str]:
        return self.parameters


@dataclass
class Conn:
    info: Info


@dataclass
class Plpy:
    conn: Any = None


def db_of(info: Info | None) -> Db:
    return Db(Plpy(Conn(info) if info is not None else None))  # type: ignore[arg-type]


def test_a_tcp_connection_becomes_a_url_and_properties() -> None:
    info = Info("db-1.internal", 6432, "my shop", "reader", "s3cret", {"sslmode": "verify-full"})
    got = jdbc_of(db_of(info), "pyrec train movies")
    assert got.url == "jdbc:postgresql://db-1.internal:6432/my%20shop"
    assert dict(got.properties) == {
        "user": "reader",
        "password": "s3cret",
        "ApplicationName": "pyrec train movies",
        "sslmode": "verify-full",
    }
    assert "s3cret" not in got.url


def test_an_ipv6_host_is_bracketed_and_no_password_is_no_property() -> None:
    got = jdbc_of(db_of(Info("::1")), "x")
    assert got.url == "jdbc:postgresql://[::1]:5432/shop"
    assert "password" not in dict(got.properties)


@pytest.mark.parametrize("host", ["/var/run/postgresql", "@abstract", ""])
def test_a_unix_socket_is_refused_with_how_to_connect(host: str) -> None:
    with pytest.raises(FeatureNotSupported, match="TCP") as caught:
        jdbc_of(db_of(Info(host)), "x")
    assert caught.value.hint and "host=" in caught.value.hint


def test_no_client_connection_is_refused() -> None:
    with pytest.raises(FeatureNotSupported, match="client connection"):
        jdbc_of(db_of(None), "x")
