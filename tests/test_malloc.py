"""The malloc arena cap (autopublish/malloc.py): applied on glibc, never over an administrator's own setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from autopublish.malloc import _glibc

pytestmark = pytest.mark.skipif(not _glibc(), reason="the arena cap applies to glibc only")

PROBE = "from autopublish.malloc import cap_arenas; print(cap_arenas())"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env={**clean, **env}).stdout.strip()


def test_glibc_takes_the_arena_cap():
    assert _probe() == "True"  # mallopt(M_ARENA_MAX, 2) answered 1


def test_an_administrators_malloc_arena_max_is_left_as_it_is():
    assert _probe(MALLOC_ARENA_MAX="4") == "False"
