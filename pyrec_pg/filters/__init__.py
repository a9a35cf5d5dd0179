"""Filter language: Personalize-style expressions or plain SQL predicates, compiled to SQL."""

from __future__ import annotations

from .compiler import CompiledFilter, Schema, compile_filter
from .syntax import Clause, FilterSyntaxError, parse

__all__ = ["Clause", "CompiledFilter", "FilterSyntaxError", "Schema", "compile_filter", "parse"]
