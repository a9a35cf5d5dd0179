"""Filter language: Personalize-style expressions or plain SQL predicates, compiled to SQL."""

from __future__ import annotations

from pyrec_pg.errors import FilterSyntaxError
from pyrec_pg.filters.compiler import CompiledFilter, Schema, compile_filter
from pyrec_pg.filters.syntax import Clause, parse

__all__ = ["Clause", "CompiledFilter", "FilterSyntaxError", "Schema", "compile_filter", "parse"]
