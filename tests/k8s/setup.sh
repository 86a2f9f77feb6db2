#!/usr/bin/env bash
# Installs what the Kubernetes tests need on a Debian 12 machine (root), idempotently:
#   - Debian packages etcd-server, golang-go, rsync, openssl;
#   - Debian's chromium (headless, for the inventory page's test);
#   - kubectl from Debian's kubernetes-client (1.20, matching the API server), extracted into the cache so
#     that it does not fight with another kubectl the machine may have;
#   - kube-apiserver, kube-controller-manager, kube-scheduler and kubelet built once from Debian's
#     `kubernetes` source package (1.20.2) with golang-go (the cluster tier runs all four).
# Everything built lands in /var/cache/bpfd/kube/ (outside the repo), so CI on the same machine reuses it.
# A second run takes well under a second. Prints nothing on success unless it had work to do.
#   BPFD_KUBE_CACHE   overrides the cache directory
set -euo pipefail

cache=${BPFD_KUBE_CACHE:-/var/cache/bpfd/kube}
apiserver="$cache/bin/kube-apiserver"
# Bump when the build recipe changes: a cached binary from an older recipe is rebuilt.
#   2: vendored reflect2 1.0.1 replaced by Debian's 1.0.2 (1.0.1 faults under Go >= 1.18 when the
#      apiserver encodes maps, e.g. on the first custom object of a CRD).
#   3: kube-controller-manager, kube-scheduler and kubelet built beside kube-apiserver.
recipe=3
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
stamp="$apiserver.recipe"
kubectl="$cache/bin/kubectl"
mkdir -p "$cache/bin"

# Headless Chromium for the inventory page's test (tests/k8s/inventory_page_test.ts).
if ! command -v chromium >/dev/null; then
  echo "k8s setup: installing chromium" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  }
fi

ready() {
  [ -x "$apiserver" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ] && [ -x "$kubectl" ] &&
    command -v etcd >/dev/null && for b in "${binaries[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done
}
if ready; then
  exit 0
fi

# One builder at a time (several test runs may start together).
exec 9>"$cache/.lock"
flock 9
ready() {
  [ -x "$apiserver" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ] && [ -x "$kubectl" ] &&
    command -v etcd >/dev/null && for b in "${binaries[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done
}
if ready; then
  exit 0
fi

updated=
apt_update() {
  if [ -z "$updated" ]; then
    apt-get update -qq || true
    updated=1
  fi
}

packages=(etcd-server golang-go rsync openssl make dpkg-dev xz-utils golang-github-modern-go-reflect2-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "k8s setup: installing ${missing[*]}" >&2
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$kubectl" ]; then
  echo "k8s setup: fetching kubectl from Debian's kubernetes-client" >&2
  apt_update
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root kubernetes-client >/dev/null && dpkg-deb -x kubernetes-client_*.deb x)
  install -m 0755 "$tmp/x/usr/bin/kubectl" "$kubectl"
  rm -rf "$tmp"
fi

if [ ! -x "$apiserver" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$recipe" ]; then
  echo "k8s setup: building ${binaries[*]} from Debian's kubernetes source (8-12 min, once)" >&2
  src_list=/etc/apt/sources.list.d/bpfd-deb-src.sources
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src ' /etc/apt/sources.list; then
    cat >"$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    updated=
  fi
  apt_update
  work="$cache/build"
  rm -rf "$work"
  mkdir -p "$work"
  (cd "$work" && apt-get source -qq -o APT::Sandbox::User=root --download-only kubernetes >/dev/null)
  dsc=$(ls "$work"/kubernetes_*.dsc | head -n1)
  (cd "$work" && dpkg-source --no-check -x "$dsc" src >/dev/null)
  cd "$work/src"
  reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -f "$reflect2/reflect2.go" ] || { echo "k8s setup: $reflect2 missing" >&2; exit 1; }
  rm -rf vendor/github.com/modern-go/reflect2
  mkdir -p vendor/github.com/modern-go/reflect2
  cp "$reflect2"/*.go "$reflect2"/*.s vendor/github.com/modern-go/reflect2/ 2>/dev/null ||
    cp "$reflect2"/*.go vendor/github.com/modern-go/reflect2/
  rm -f vendor/github.com/modern-go/reflect2/*_test.go
  mkdir -p .go/src/k8s.io
  ln -sfn ../../.. .go/src/k8s.io/kubernetes
  mkdir -p "$work/home"
  GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$work/home" \
    make WHAT="${binaries[*]/#/cmd/}" >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    echo "k8s setup: kubernetes build failed (log: $work/build.log)" >&2
    exit 1
  }
  for b in "${binaries[@]}"; do
    built=$(find _output -type f -name "$b" -perm -u+x | head -n1)
    [ -n "$built" ] || { echo "k8s setup: no $b in _output" >&2; exit 1; }
    install -m 0755 "$built" "$cache/bin/$b.tmp"
    mv "$cache/bin/$b.tmp" "$cache/bin/$b"
  done
  echo "$recipe" >"$stamp"
  cd /
  rm -rf "$work"
  echo "k8s setup: ${binaries[*]} cached in $cache/bin" >&2
fi
