#!/usr/bin/env bash
# Sets up the machine if needed, then runs bpfd's whole test suite as root: the host tier (real kernel,
# network namespaces, registry, kube-apiserver), the cluster tier (bpfd's image in a real one-node
# Kubernetes cluster: deno task cluster) and the VM tier (Debian's kernel under qemu), and prints one
# closing line "tests: N passed, N failed". Exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || { echo "setup failed" >&2; exit 1; }
bash tests/host/image/setup.sh || { echo "image test setup failed" >&2; exit 1; } # registry, skopeo, umoci
bash tests/k8s/setup.sh || { echo "k8s test setup failed" >&2; exit 1; } # etcd, kubectl, kube-apiserver (cached build)
# containerd, runc, CNI plugins, umoci, mmdebstrap, ...; kubelet & co. (cached build); bpfd's image (cached rootfs)
bash tests/cluster/setup.sh || { echo "cluster test setup failed" >&2; exit 1; }
deno=toolchain/node_modules/.bin/deno
reports=$(mktemp -d /tmp/bpfd-test-reports.XXXXXX)
trap 'rm -rf "$reports"' EXIT
status=0

echo "== host tier"
"$deno" test -A --no-check=remote --junit-path="$reports/host.xml" --ignore=tests/cluster tests/ || status=1

echo "== cluster tier"
# One cluster for the tier's files; a cluster that was already up (deno task cluster up) is left up.
was_up=0
"$deno" task -q cluster status >/dev/null 2>&1 && was_up=1
if "$deno" task -q cluster up >/dev/null; then
  "$deno" test -A --no-check=remote --junit-path="$reports/cluster.xml" tests/cluster/ || status=1
else
  echo "cluster tier: the cluster did not come up" >&2
  status=1
fi
[ "$was_up" = 1 ] || "$deno" task -q cluster down || status=1

if [ -x tests/vm/run.sh ]; then
  echo "== vm tier"
  tests/vm/run.sh --junit-path "$reports/vm.xml" || status=1
fi

[ -f tests/_caps.ts ] && "$deno" run -A tests/_caps.ts "$reports"/*.xml # per tier: program types proven there
"$deno" run -A tests/summary.ts "$reports"/*.xml || status=1
exit $status
