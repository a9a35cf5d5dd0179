"""The entry points under the name SQL 0.1.0 and 0.2.0 import, until ALTER EXTENSION UPDATE."""

from __future__ import annotations

from pyrec_pg.entrypoints.server import dispatch

__all__ = ["dispatch"]
