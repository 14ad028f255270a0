"""Several nodes on one PostgreSQL, one SIGKILLed again and again (short form in CI; python -m tests.torture_nodes for more)."""

from __future__ import annotations

import os

from tests.torture_nodes import torture_nodes


def test_three_nodes_one_killed_repeatedly_post_each_article_once(tmp_path, postgres_url, capsys):
    rounds = int(os.environ.get("TORTURE_NODES_ROUNDS", "10"))
    report = torture_nodes(tmp_path, postgres_url, nodes=3, rounds=rounds, per_round=10, seed=7, say=lambda line: None)
    with capsys.disabled():
        print("\nseveral nodes: " + " | ".join(report.lines()))
    assert report.articles == rounds * 10 >= 100 and report.kills == rounds
    assert report.baselines == 1  # every node started at the same moment
    assert report.duplicates == 0
    assert report.lost == []
    assert report.unsettled_readable == []
    assert report.canary_found_in == []
    # about once per poll interval, not once per node (each node start polls once at once)
    assert report.fetches <= 1.6 * report.seconds + report.starts
    assert len(report.posted_by) >= 2  # the work was shared
