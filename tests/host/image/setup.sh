#!/usr/bin/env bash
# Installs the Debian packages that bpfd's image tests and benchmarks use: a real registry
# (docker-registry), skopeo and umoci for interop, htpasswd (apache2-utils) for basic auth, openssl for the
# test CA. Idempotent; a second run takes well under a second.
set -euo pipefail
packages=(docker-registry skopeo umoci apache2-utils openssl ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "image setup: installing ${missing[*]}" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # The package's own service is not wanted: tests start registries on loopback themselves.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
