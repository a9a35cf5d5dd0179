"""Giving freed memory back to the operating system between a training's phases."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release() -> None:
    """Return the C heap's free pages to the OS (glibc's malloc_trim; a no-op elsewhere).

    A training runs in a server backend that lives on after it (or in a client): numpy frees
    its arrays, but glibc keeps the freed heap pages mapped, so the backend would go on
    holding a phase's peak. Each phase's peak is then its own, not the sum of earlier ones."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)
