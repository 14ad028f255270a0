"""The torture run in its short form (CI); `python -m tests.torture` runs the long form on demand."""

from __future__ import annotations

import os

import pytest

from tests.torture import torture


@pytest.mark.parametrize("seed", [1, 2])
def test_faults_and_kills_never_post_twice_or_lose_a_post(tmp_path, seed, capsys):
    rounds = int(os.environ.get("TORTURE_ROUNDS", "5"))
    report = torture(tmp_path, rounds=rounds, per_round=3, seed=seed, say=lambda line: None)
    with capsys.disabled():
        print(f"\ntorture seed {seed}: " + " | ".join(report.lines()))
    assert report.kills == rounds and report.articles == rounds * 3
    assert sum(report.faults.values()) > 0
    assert report.duplicates == 0
    assert report.lost == []
    assert report.unsettled_readable == []
    assert report.canary_found_in == []


@pytest.mark.slow
def test_long_form():
    """On demand: pytest -m slow tests/test_torture.py (or python -m tests.torture)."""
    from pathlib import Path
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as tmp:
        report = torture(Path(tmp), rounds=20, per_round=4, seed=99, settle_timeout=300)
    assert report.duplicates == 0 and report.lost == [] and report.unsettled_readable == [] and report.canary_found_in == []
