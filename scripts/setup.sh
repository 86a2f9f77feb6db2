#!/usr/bin/env bash
# Installs what bpfd needs on a Debian 12 machine (root): Debian packages, Deno pinned from npm, the npm
# modules the code imports, and the bytecode build. Idempotent; a second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libbpf1 libbpf-dev clang llvm bpftool iproute2 iputils-ping xdp-tools gcc libc6-dev util-linux curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pinned=$(node -p 'require("./toolchain/package.json").devDependencies.deno')
if ! toolchain/node_modules/.bin/deno --version 2>/dev/null | grep -q "^deno $pinned "; then
  echo "setup: installing deno $pinned from npm" >&2
  (cd toolchain && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# bpfd: may read map pins (read-only). bpfd-admin: may use the API socket, which is root-equivalent.
getent group bpfd >/dev/null || groupadd --system bpfd
getent group bpfd-admin >/dev/null || groupadd --system bpfd-admin

deno=toolchain/node_modules/.bin/deno
"$deno" install --quiet >/dev/null
"$deno" task --quiet bytecode
