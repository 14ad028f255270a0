#!/usr/bin/env bash
# Set up, then run the main job once on the built-in demo (bundled sample feed -> local outbox)
# and show the publish log. No credentials needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/autopublish run --once
echo
echo "Publish log (autopublish log):"
.venv/bin/autopublish log
echo
echo "Posts written to: queue/outbox/outbox.jsonl"
