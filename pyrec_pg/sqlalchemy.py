"""The public import path of pyrec's SQLAlchemy constructs (pyrec_pg.integrations.sqlalchemy)."""

from __future__ import annotations

from pyrec_pg.integrations.sqlalchemy import *  # noqa: F403
from pyrec_pg.integrations.sqlalchemy import __all__ as __all__
