"""pyrec_pg: an in-database recommender for PostgreSQL."""

from __future__ import annotations

__version__ = "0.1.0"
