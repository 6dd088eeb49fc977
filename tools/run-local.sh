#!/usr/bin/env bash
# `make run`: a local mod_claude gateway with embedded defaults.
# Installs what is missing, builds, then hands over to tools/run_local.py,
# which starts PostgreSQL, the development IdP, the Anthropic stand-in (or
# uses the real API when ANTHROPIC_API_KEY is set) and httpd, and stops them
# all on Ctrl-C.
#   CLAUDE_PORT      gateway port on 127.0.0.1 (default 8080)
#   CLAUDE_DATA_DIR  where the cluster, config and logs live
#                    (default /tmp/mod_claude-run)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
make -s
exec /usr/bin/python3 tools/run_local.py "$@"
