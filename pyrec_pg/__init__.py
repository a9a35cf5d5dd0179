"""pyrec_pg: an in-database recommender for PostgreSQL."""

from __future__ import annotations

__version__ = "0.3.0"

# Versions of the extension's SQL (pg_extension.extversion) this package serves. The Python is
# upgraded before ALTER EXTENSION pyrec UPDATE, so it keeps serving the previous release's SQL
# until the DBA updates each database; pyrec._python refuses any other version (SQLSTATE 55000).
SQL_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0")


class _PackageVersion(str):
    """The package version; `!=` asks "does this package NOT serve that SQL version".

    0.1.0's pyrec._python, installed in databases not yet updated, admits the Python only if
    `pyrec_pg.__version__ != extversion` is false. Drop this class when 0.1.0 leaves
    SQL_VERSIONS; `==` and hashing stay plain str.
    """

    __slots__ = ()

    def __ne__(self, other: object) -> bool:
        return other not in SQL_VERSIONS and str.__ne__(self, other)


__version__ = _PackageVersion(__version__)
