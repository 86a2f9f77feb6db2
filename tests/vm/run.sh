#!/usr/bin/env bash
# The VM tier: runs chosen `deno test` files as root inside Debian's own linux-image-6.1.0-*-cloud-amd64
# kernel under qemu (software emulation), for what this host's kernel refuses (kprobes, fentry, fexit,
# freplace). Output streams to stdout; the exit status is the tests'. A VM that does not boot, hangs or
# dies without reporting fails the run with a message (and, with --junit-path, a report holding a failure).
#
#   tests/vm/run.sh [--junit-path FILE] [--timeout SECONDS] [test files...]
#
# Without files it runs tests/vm/guest_smoke.ts and every test file under tests/vm/, where tests that
# need kernel capabilities must live (tests/_caps.ts's capTest enforces it), so everything the host tier
# skips for a missing capability runs here. Cached under /var/cache/bpfd/vm (BPFD_VM_CACHE): the kernel and its modules per version, the
# guest's base layer (busybox, deno, libbpf & co, bpftool, iproute2, xdp-tools, modules) and the npm cache
# layer; only the project layer is rebuilt each run. Environment: BPFD_VM_KERNEL (e.g. 6.1.0-56-cloud-amd64),
# BPFD_VM_TIMEOUT (whole run, default 1500 s), BPFD_VM_BOOT_TIMEOUT (to the guest's /init, default 120 s),
# BPFD_VM_MEM (MiB, default 2048), BPFD_VM_CPUS (default 2).
set -eEuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${BPFD_VM_CACHE:-/var/cache/bpfd/vm}
time_limit=${BPFD_VM_TIMEOUT:-1500}
boot_limit=${BPFD_VM_BOOT_TIMEOUT:-120}
mem=${BPFD_VM_MEM:-2048}
cpus=${BPFD_VM_CPUS:-2}
deno="$repo/toolchain/node_modules/.bin/deno"
multiarch=x86_64-linux-gnu

junit=""
files=()
while [ $# -gt 0 ]; do
  case $1 in
    --junit-path) junit=$2; shift 2 ;;
    --junit-path=*) junit=${1#*=}; shift ;;
    --timeout) time_limit=$2; shift 2 ;;
    --timeout=*) time_limit=${1#*=}; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; files+=("$@"); break ;;
    -*) echo "vm: unknown option $1" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ -z "$junit" ] || junit=$(realpath -m "$junit")

started=$(date +%s%N)
log() { printf 'vm: [%5.1fs] %s\n' "$(( ($(date +%s%N) - started) / 1000000 ))e-3" "$*" >&2; }

# A failure before or around the tests still leaves a report that says so (summary.ts counts it failed).
fail() {
  local msg=$1
  printf '\nvm: FAILED: %s\n' "$msg" >&2
  if [ -n "$junit" ]; then
    local esc=${msg//&/&amp;}
    esc=${esc//</&lt;}
    esc=${esc//>/&gt;}
    esc=${esc//\"/&quot;}
    mkdir -p "$(dirname "$junit")"
    cat >"$junit" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="vm" tests="1" failures="1" errors="0">
  <testsuite name="tests/vm/run.sh" tests="1" disabled="0" errors="0" failures="1">
    <testcase name="vm tier runs to completion" classname="tests/vm/run.sh">
      <failure message="$esc">$esc</failure>
    </testcase>
  </testsuite>
</testsuites>
EOF
  fi
  exit 1
}

# Any unexpected failure of a command (set -e) also ends in fail(), with the command that failed.
trap 'fail "tests/vm/run.sh line $LINENO: \"$BASH_COMMAND\" failed"' ERR

[ "$(id -u)" = 0 ] || fail "must run as root (it installs packages and runs tests as root)"
[ -x "$deno" ] || fail "no deno at $deno: run scripts/setup.sh first"

# ---- host packages ----------------------------------------------------------------------------------
need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
need_packages qemu-system-x86 busybox-static cpio kmod clang libbpf-dev libbpf1 libxdp1 libelf1 zlib1g \
  bpftool iproute2 iputils-ping xdp-tools util-linux libc-bin ||
  fail "could not install the VM tier's Debian packages"

# ---- kernel: Debian's cloud kernel package, extracted once per version -------------------------------
mkdir -p "$cache/kernel" "$cache/layers" "$cache/objects" "$cache/runs"
pick_kernel() {
  if [ -n "${BPFD_VM_KERNEL:-}" ]; then echo "$BPFD_VM_KERNEL"; return; fi
  local v
  v=$(find "$cache/kernel" -mindepth 1 -maxdepth 1 -name '6.1.0-*-cloud-amd64' -printf '%f\n' | sort -V | tail -1)
  if [ -n "$v" ] && [ -f "$cache/kernel/$v/.complete" ]; then echo "$v"; return; fi
  v=$(apt-cache pkgnames linux-image-6.1.0- | grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | sort -V | tail -1)
  if [ -z "$v" ]; then
    apt-get update -qq >&2
    v=$(apt-cache pkgnames linux-image-6.1.0- | grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | sort -V | tail -1)
  fi
  echo "${v#linux-image-}"
}
kver=$(pick_kernel)
[ -n "$kver" ] || fail "no linux-image-6.1.0-*-cloud-amd64 package in apt's lists"
kdir="$cache/kernel/$kver"
if [ ! -f "$kdir/.complete" ]; then
  log "fetching linux-image-$kver"
  tmp=$(mktemp -d "$cache/kernel/.fetch.XXXXXX")
  download() { (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "linux-image-$kver" >/dev/null); }
  download || { apt-get update -qq && download; } ||
    { rm -rf "$tmp"; fail "apt-get download linux-image-$kver failed"; }
  dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/root"
  depmod -b "$tmp/root" "$kver"
  mkdir -p "$tmp/out"
  mv "$tmp/root/boot/vmlinuz-$kver" "$tmp/out/vmlinuz"
  mv "$tmp/root/boot/config-$kver" "$tmp/out/config"
  mkdir -p "$tmp/out/lib/modules"
  mv "$tmp/root/lib/modules/$kver" "$tmp/out/lib/modules/$kver"
  rm -rf "$kdir"
  mv "$tmp/out" "$kdir"
  rm -rf "$tmp"
  touch "$kdir/.complete"
fi
log "kernel $kver"

# ---- base layer: everything but the project and the npm cache ---------------------------------------
# Binaries the tests may run, the shared libraries they (and ffi/ through dlopen) need, and modules.
binaries=(/usr/sbin/bpftool /usr/bin/ip /usr/sbin/tc /usr/bin/ss /usr/sbin/bridge /usr/bin/ping
  /usr/sbin/xdp-loader /usr/sbin/xdp-filter /usr/sbin/xdpdump /usr/bin/nsenter /usr/bin/unshare)
dlopened=(libbpf.so.1 libxdp.so.1 libelf.so.1 libz.so.1 libc.so.6 libm.so.6)
modules=(veth dummy ifb tun macvlan bridge sch_ingress sch_prio sch_htb sch_fq cls_bpf cls_u32 cls_matchall
  cls_flower act_bpf act_gact act_mirred)
deno_real=$(readlink -f "$deno")
base_key=$(
  {
    echo "$kver"
    sha256sum "$0" "$here/init.sh" | cut -d' ' -f1
    stat -c '%n %s %Y' "$deno_real" /bin/busybox "${binaries[@]}"
    dpkg-query -W libbpf1 libxdp1 libelf1 zlib1g libc6 busybox-static iproute2 xdp-tools bpftool
  } | sha256sum | cut -c1-16
)
base="$cache/layers/base-$base_key.cpio"

copy_lib() { # copies a library by path into the root at the same path, as a file (no symlinks kept)
  local root=$1 lib=$2 dir
  dir="$root/usr/lib/$multiarch"
  [ -e "$dir/$(basename "$lib")" ] || cp -L "$lib" "$dir/"
}

build_base() {
  local root="$cache/layers/.base-$base_key.$$"
  rm -rf "$root"
  mkdir -p "$root"/{usr/bin,usr/sbin,usr/local/bin,"usr/lib/$multiarch/bpf",usr/lib64,etc,root,dev,proc,sys,run,tmp}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  cp /bin/busybox "$root/usr/bin/busybox"
  cp "$deno_real" "$root/usr/local/bin/deno"
  local b l applet
  for b in "${binaries[@]}"; do cp "$b" "$root$b"; done
  cp -L /lib64/ld-linux-x86-64.so.2 "$root/usr/lib64/"
  for b in "$deno_real" "${binaries[@]}"; do
    for l in $(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do copy_lib "$root" "$l"; done
  done
  for l in "${dlopened[@]}"; do
    copy_lib "$root" "/usr/lib/$multiarch/$l"
    for b in $(ldd "/usr/lib/$multiarch/$l" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do copy_lib "$root" "$b"; done
  done
  cp /usr/lib/$multiarch/bpf/*.o "$root/usr/lib/$multiarch/bpf/"
  # busybox applets wherever no real binary sits (and /bin/sh for /init).
  for applet in $(busybox --list-full); do
    b=$(basename "$applet")
    [ -e "$root/usr/bin/$b" ] || [ -e "$root/usr/sbin/$b" ] || [ -e "$root/usr/local/bin/$b" ] ||
      [ -L "$root/$applet" ] || ln -s /usr/bin/busybox "$root/$applet"
  done
  ldconfig -r "$root" 2>/dev/null || true
  # Modules and what they depend on, with a fresh modules.dep for busybox modprobe.
  local kmods="$root/lib/modules/$kver" m
  mkdir -p "$kmods"
  local from="$kdir/lib/modules/$kver"
  cp "$from/modules.order" "$from/modules.builtin" "$from/modules.builtin.modinfo" "$kmods/"
  for m in $(modprobe -d "$kdir" -S "$kver" -a --show-depends "${modules[@]}" | awk '$1 == "insmod" {print $2}'); do
    m=${m#"$from/"}
    mkdir -p "$kmods/$(dirname "$m")"
    cp "$from/$m" "$kmods/$m"
  done
  depmod -b "$root" "$kver"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  {
    echo "root:x:0:"
    getent group bpfd || echo "bpfd:x:999:"
    echo "nogroup:x:65534:"
  } >"$root/etc/group"
  printf '127.0.0.1 localhost bpfd-vm\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"
  echo bpfd-vm >"$root/etc/hostname"
  cp /etc/os-release "$root/etc/os-release"
  (cd "$root" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet) >"$base.tmp.$$"
  mv "$base.tmp.$$" "$base"
  rm -rf "$root"
  find "$cache/layers" -maxdepth 1 -name 'base-*.cpio' ! -name "base-$base_key.cpio" -mmin +60 -delete
}
if [ ! -f "$base" ]; then
  log "building the base layer ($base_key)"
  build_base
fi

# ---- which test files --------------------------------------------------------------------------------
cd "$repo"
if [ ${#files[@]} -eq 0 ]; then
  files=(tests/vm/guest_smoke.ts)
  if [ -d tests/vm ]; then
    while IFS= read -r f; do files+=("$f"); done < <(find tests/vm -name '*_test.ts' -o -name '*.test.ts' | sort)
  fi
fi
rel=()
for f in "${files[@]}"; do
  [ -e "$f" ] || fail "no test file $f"
  r=$(realpath --relative-to="$repo" "$f")
  case $r in ../*) fail "$f is outside the project" ;; esac
  rel+=("$r")
done
files=("${rel[@]}")
log "test files: ${files[*]}"

# The BPF objects and fixtures the tests load (a no-op when up to date), built here: the guest has no clang.
if [ -f bytecode/build.ts ]; then
  "$deno" run -A bytecode/build.ts || fail "deno task bytecode failed"
fi

# Type-check on the host (fast, shares the host tier's cache) so the guest can skip it.
"$deno" check --quiet "${files[@]}" || fail "type check of the VM test files failed"

# ---- project layer (every run) and npm cache layer (when the dependencies change) -------------------
find "$cache/runs" -mindepth 1 -maxdepth 1 -mmin +240 -exec rm -rf {} + # left by runs that were killed
run_dir=$(mktemp -d "$cache/runs/run.XXXXXX")
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill -9 "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
proj="$run_dir/root"
mkdir -p "$proj/bpfd" "$proj/bpfd-vm"
tar -C "$repo" -c --exclude=./.git --exclude=./toolchain --exclude=./node_modules --exclude=./.cache \
  --exclude=./coverage --exclude=./package.json --exclude=./package-lock.json . | tar -C "$proj/bpfd" -x
cp "$here/init.sh" "$proj/init"
chmod 755 "$proj/init"

# The npm packages the chosen files load (and their dependencies), copied from Deno's own cache — the one
# the host tier fills — into the guest's DENO_DIR, so that the guest resolves them offline.
(cd "$proj/bpfd" && "$deno" cache --quiet "${files[@]}") ||
  fail "deno cache of the VM test files failed (npm registry unreachable?)"
npm_cache=$("$deno" info --json | sed -n 's/^ *"npmCache": "\(.*\)",\{0,1\}$/\1/p')
[ -d "$npm_cache" ] || fail "cannot find Deno's npm cache (deno info --json says '$npm_cache')"
npm_paths=$(cd "$proj/bpfd" && "$deno" run -A "$here/npm_closure.ts" "${files[@]}") ||
  fail "listing the npm packages of the VM test files failed"
deps_key=$(echo "$npm_paths" | sha256sum | cut -c1-16)
deps="$cache/layers/deps-$deps_key.cpio"
if [ ! -f "$deps" ]; then
  log "building the npm cache layer ($deps_key)"
  mkdir -p "$run_dir/deps/bpfd-vm/deno-dir/npm"
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    r=${p#"$npm_cache/"}
    mkdir -p "$run_dir/deps/bpfd-vm/deno-dir/npm/$(dirname "$r")"
    cp -a "$p" "$run_dir/deps/bpfd-vm/deno-dir/npm/$r"
  done <<<"$npm_paths"
  (cd "$run_dir/deps" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet) >"$deps.tmp.$$"
  mv "$deps.tmp.$$" "$deps"
  rm -rf "$run_dir/deps"
  find "$cache/layers" -maxdepth 1 -name 'deps-*.cpio' ! -name "deps-$deps_key.cpio" -mmin +60 -delete
fi

# The smoke test's fentry/fexit object, compiled here (the guest has no clang).
smoke_src="$here/smoke_fentry.bpf.c"
smoke_obj="$cache/objects/smoke_fentry-$(sha256sum "$smoke_src" | cut -c1-16).bpf.o"
if [ ! -f "$smoke_obj" ]; then
  clang -O2 -g -Wall -target bpf "-I/usr/include/$multiarch" -c "$smoke_src" -o "$smoke_obj.tmp.$$" ||
    fail "compiling $smoke_src failed"
  mv "$smoke_obj.tmp.$$" "$smoke_obj"
fi
cp "$smoke_obj" "$proj/bpfd-vm/smoke_fentry.bpf.o"

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
{
  printf 'set -- --no-check'
  for f in "${files[@]}"; do printf ' %s' "$(q "$f")"; done
  echo
} >"$proj/bpfd-vm/args.sh"
{
  echo "export DENO_DIR=/bpfd-vm/deno-dir"
  echo "export BPFD_VM_KERNEL=$(q "$kver")"
  echo "export BPFD_VM_SMOKE_OBJECT=/bpfd-vm/smoke_fentry.bpf.o"
} >"$proj/bpfd-vm/env"
(cd "$proj" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet) >"$run_dir/project.cpio"
cat "$base" "$deps" "$run_dir/project.cpio" >"$run_dir/initrd.cpio"
rm -rf "$proj" "$run_dir/project.cpio"
log "initramfs ready: $(du -m "$run_dir/initrd.cpio" | cut -f1) MiB"

# ---- boot ----------------------------------------------------------------------------------------------
console="$run_dir/console.log"
: >"$console"
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$mem" -smp "$cpus" -nodefaults -no-reboot \
  -display none -monitor none \
  -kernel "$kdir/vmlinuz" -initrd "$run_dir/initrd.cpio" \
  -append "console=ttyS0 panic=-1 oops=panic quiet mitigations=off rdinit=/init" \
  -serial "file:$console" -serial "file:$run_dir/junit.xml" -serial "file:$run_dir/status" \
  </dev/null >"$run_dir/qemu.out" 2>&1 &
qemu_pid=$!
log "booting qemu (pid $qemu_pid, tcg, $cpus cpus, $mem MiB, limit ${time_limit}s)"
tail -s 0.2 -n +1 -f --pid="$qemu_pid" "$console" | tr -d '\r' &
tail_pid=$!

boot_start=$(date +%s)
booted=""
verdict=""
while kill -0 "$qemu_pid" 2>/dev/null; do
  now=$(date +%s)
  if [ -z "$booted" ]; then
    if grep -q "bpfd-vm: init up" "$console"; then
      booted=$now
      log "guest /init up after $((now - boot_start))s"
    elif [ $((now - boot_start)) -ge "$boot_limit" ]; then
      verdict="the VM did not boot: no word from the guest's /init within ${boot_limit}s"
      break
    fi
  fi
  if [ $((now - boot_start)) -ge "$time_limit" ]; then
    verdict="the VM timed out after ${time_limit}s (tests hung or too slow; BPFD_VM_TIMEOUT raises the limit)"
    break
  fi
  sleep 0.5
done
if [ -n "$verdict" ]; then
  kill -9 "$qemu_pid" 2>/dev/null || true
fi
qemu_status=0
wait "$qemu_pid" 2>/dev/null || qemu_status=$?
qemu_pid=""
wait "$tail_pid" 2>/dev/null || true
[ -n "$verdict" ] && fail "$verdict"
if [ ! -s "$run_dir/status" ]; then
  tail -5 "$run_dir/qemu.out" >&2 || true
  if [ -z "$booted" ]; then
    fail "the VM stopped before its /init ran (qemu exit status $qemu_status; see the console above)"
  fi
  fail "the VM stopped without reporting a result (kernel panic or crash? qemu exit status $qemu_status)"
fi
status=$(tr -d '\r' <"$run_dir/status" | awk '$1 == "status" {print $2; exit}')
[ -n "$status" ] || fail "the guest's status report is unreadable: $(head -c 200 "$run_dir/status")"
log "guest finished: deno test exit status $status"

# ---- the report ----------------------------------------------------------------------------------------
if [ -n "$junit" ]; then
  if [ -s "$run_dir/junit.xml" ] && grep -q '</testsuites>' "$run_dir/junit.xml"; then
    mkdir -p "$(dirname "$junit")"
    tr -d '\r' <"$run_dir/junit.xml" | sed "0,/<testsuites name=\"[^\"]*\"/s//<testsuites name=\"vm: linux $kver\"/" >"$junit"
    if [ "$status" != 0 ] && ! grep -qE '<(failure|error)\b' "$junit"; then
      fail "deno test exited $status in the VM without a failing test in its report (load error?)"
    fi
  else
    fail "deno test exited $status in the VM and wrote no JUnit report"
  fi
fi
[ "$status" = 0 ] || { echo "vm: FAILED: deno test exited $status in the VM" >&2; exit 1; }
log "VM tier passed"
