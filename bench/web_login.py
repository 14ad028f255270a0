"""Benchmark: how long a wrong sign-in takes on the editors' page, for a known and an unknown name.

An unknown name is checked against a dummy hash of the same method and cost as the first
account's, so the two should take about as long (a difference would tell a guesser which
names exist). Each try comes from its own address and the app's clock moves a minute
between tries, so the throttle never answers first.

Prints the median and spread of each, from the same run. Numbers, not assertions.
Usage: python bench/web_login.py [--tries 20] [--method scrypt]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--method", default="scrypt", help="werkzeug method of the account's hash, e.g. scrypt or pbkdf2:sha256:600000")
    args = parser.parse_args()

    from werkzeug.security import generate_password_hash

    from autopublish.config import load_config
    from autopublish.web.app import create_app

    with tempfile.TemporaryDirectory(prefix="autopublish-bench-") as tmp:
        path = Path(tmp) / "autopublish.toml"
        path.write_text(f'[settings]\nstate_dir = "{tmp}/queue"\n\n[feeds.site]\nurl = "sample:"\nchannels = []\n\n'
                        f'[[web.users]]\nname = "editor"\npassword_hash = "{generate_password_hash("right", method=args.method)}"\n')
        skipped = [0.0]
        app = create_app(load_config(path, {}), clock=lambda: time.time() + skipped[0])
        client = app.test_client()
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").get_data(as_text=True))
        assert csrf is not None
        timings: dict[str, list[float]] = {"known name": [], "unknown name": []}
        for number in range(args.tries):
            skipped[0] += 60  # past the account's backoff (at most 30 s)
            for label, name in (("known name", "editor"), ("unknown name", f"nobody{number}")):
                start = time.perf_counter()
                code = client.post("/login", data={"name": name, "password": "wrong", "csrf": csrf.group(1)},
                                   environ_base={"REMOTE_ADDR": f"10.{number // 250}.{number % 250}.{1 if label == 'known name' else 2}"}).status_code
                timings[label].append(time.perf_counter() - start)
                assert code == 401, code
        app.extensions["autopublish_store"].close()
    for label, values in timings.items():
        print(f"{label:13s} median {statistics.median(values) * 1000:7.1f} ms   min {min(values) * 1000:7.1f}   max {max(values) * 1000:7.1f}"
              f"   ({len(values)} wrong sign-ins, {args.method})")
    ratio = statistics.median(timings["unknown name"]) / statistics.median(timings["known name"])
    print(f"unknown/known median ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
