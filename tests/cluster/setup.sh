#!/usr/bin/env bash
# Installs what the cluster tier (tests/cluster/), `deno task cluster` and `deno task image` need on a
# Debian 12 machine (root), idempotently:
#   - kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl (tests/k8s/setup.sh:
#     built once from Debian's kubernetes source, cached in /var/cache/bpfd/kube);
#   - Debian packages: containerd, runc, containernetworking-plugins (the node), socat and iptables (the
#     API server's relay, the kubernetes Service), umoci, skopeo, mmdebstrap and busybox-static (images),
#     docker-registry (the test registry bytecode images are pulled from);
#   - the Debian rootfs of bpfd's image (deploy/image.sh caches it in /var/cache/bpfd/image).
# A second run takes about a second. Prints nothing on success unless it had work to do.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/k8s/setup.sh

packages=(containerd runc containernetworking-plugins socat iptables umoci skopeo mmdebstrap busybox-static
  docker-registry openssl ca-certificates iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cluster setup: installing ${missing[*]}" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # The packages' own services are not wanted (no init system starts them here): the cluster starts its
  # own containerd, in the node's namespaces.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi

# bpfd's image, so that the tier's first run does not pay for the rootfs inside a test's timeout.
toolchain/node_modules/.bin/deno task -q image >/dev/null
