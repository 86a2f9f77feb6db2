#!/usr/bin/env bash
# Sets up the machine if needed, then runs bpfd's node runtime on its embedded default: state under
# /run/bpfd, bpffs at /run/bpfd/fs, API on the unix socket /run/bpfd/bpfd.sock only (root and group
# bpfd-admin; no TCP listener). Extra arguments go to the runtime (see `deno task start --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec toolchain/node_modules/.bin/deno run -A --no-code-cache --v8-flags=--max-semi-space-size=1,--jitless,--optimize-for-size runtime/main.ts "$@"
