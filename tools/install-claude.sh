#!/usr/bin/env bash
# Install the real Claude Code client (npm @anthropic-ai/claude-code) for the
# end-to-end tests, into .cache/claude-code of this checkout. Idempotent.
# The native binary lives in the platform package
# (@anthropic-ai/claude-code-linux-x64); the wrapper's postinstall script is
# not needed for it, so scripts are not run. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${CLAUDE_CODE_VERSION:-2.1.328}   # the version the reference captures come from
DIR=.cache/claude-code
BIN=$DIR/node_modules/@anthropic-ai/claude-code-linux-x64/claude
if [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null | cut -d' ' -f1)" = "$VERSION" ]; then
    echo "$PWD/$BIN"
    exit 0
fi
if ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
mkdir -p "$DIR"
(cd "$DIR" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
    "@anthropic-ai/claude-code@$VERSION" "@anthropic-ai/claude-code-linux-x64@$VERSION" >&2)
HOME=$(mktemp -d) "$BIN" --version >&2
echo "$PWD/$BIN"
