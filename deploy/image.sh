#!/usr/bin/env bash
# Builds OCI images without docker, from Debian packages (root; needs mmdebstrap, umoci, skopeo,
# busybox-static: tests/cluster/setup.sh installs them). Run by `deno task image` (deploy/image.ts).
#
#   image.sh bpfd ARCHIVE REF       bpfd's image as an oci-archive tagged REF, from this repository:
#     layer 1  Debian bookworm minbase + libbpf1 libelf1 zlib1g iproute2 bpftool util-linux mount
#              ca-certificates bpftrace (mmdebstrap from the mirrors apt uses), cached in $CACHE keyed on
#              that list, so a rebuild takes seconds;
#     layer 2  /app (the repository's source without tests/, plus bytecode/build), /usr/local/bin/deno (the
#              pinned binary), /deno-dir (every module the entry points import: pods run --cached-only) and
#              /etc/group with group bpfd at the fixed GID $BPFD_GID (2000), the GID map pins get and the
#              manifests' application pods use as a supplemental group.
#     Unchanged inputs (source, deno, bytecode, packages, GID) leave ARCHIVE as it is.
#   image.sh busybox DIR PAUSE_REF BUSYBOX_REF
#     DIR/pause.tar (busybox-static sleeping forever: containerd's sandbox image) and DIR/busybox.tar
#     (/bin/sh): the cluster's own images, since no registry is reachable.
# Prints nothing but errors and one line per image built.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BPFD_IMAGE_CACHE:-/var/cache/bpfd/image}
BPFD_GID=${BPFD_GID:-2000}
SUITE=bookworm
PACKAGES=(libbpf1 libelf1 zlib1g iproute2 bpftool util-linux mount ca-certificates bpftrace)
log() { echo "image: $*" >&2; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
work=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The Debian mirrors this machine's apt uses (deb822 and one-line sources), as mmdebstrap source lines.
mirrors() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(  n, s, i) {
        if (deb && uri ~ /debian/) { n = split(suites, s, " "); for (i = 1; i <= n; i++) print "deb " uri " " s[i] comps }
        deb = 0
      }
      /^Types:/ { deb = ($0 ~ /(^|[ \t])deb([ \t]|$)/) }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { suites = ""; for (i = 2; i <= NF; i++) suites = suites " " $i }
      /^Components:/ { comps = ""; for (i = 2; i <= NF; i++) comps = comps " " $i }
      /^$/ { flush() }
      END { flush() }
    ' "$f"
  done
  grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | grep debian || true
}

# A skopeo oci-archive of LAYOUT:TAG named REF, written atomically to ARCHIVE.
archive() { # archive LAYOUT TAG REF ARCHIVE
  skopeo copy -q "oci:$1:$2" "oci-archive:$4.tmp:$3"
  mv "$4.tmp" "$4"
}

bpfd_image() {
  local out=$1 ref=$2
  local key rootfs layout base deno_bin
  key=$(printf '%s\n' "$SUITE" "${PACKAGES[@]}" "$(mirrors | sort)" "recipe 1" | sha256sum | cut -c1-16)
  rootfs="$CACHE/rootfs-$key.tar"
  deno_bin=$(readlink -f "$repo/toolchain/node_modules/.bin/deno")
  [ -x "$deno_bin" ] || { log "no deno at $repo/toolchain/node_modules/.bin/deno (scripts/setup.sh)"; exit 1; }
  [ -d "$repo/bytecode/build" ] || { log "no bytecode/build: deno task bytecode"; exit 1; }

  # What the image is made of; the same inputs give the archive that is already there.
  local files inputs
  files=$(cd "$repo" && git ls-files -co --exclude-standard | grep -vE '^(tests|toolchain|docs|\.github)/' |
    while read -r f; do [ -f "$f" ] && echo "$f"; done)
  inputs=$(
    cd "$repo"
    {
      echo "$key $ref $BPFD_GID recipe 1"
      sha256sum "$deno_bin"
      echo "$files" | tr '\n' '\0' | xargs -0 sha256sum
      find bytecode/build -type f -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-32
  )
  if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$inputs" ]; then
    return 0
  fi

  if [ ! -f "$rootfs" ]; then
    log "building the Debian rootfs ($SUITE minbase + ${PACKAGES[*]}), once per package list"
    local srcs include
    mapfile -t srcs < <(mirrors | sort -u)
    [ ${#srcs[@]} -gt 0 ] || { log "no Debian mirror in /etc/apt/sources.list(.d)"; exit 1; }
    include=$(
      IFS=,
      echo "${PACKAGES[*]}"
    )
    mmdebstrap --quiet --variant=minbase --include="$include" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      "$SUITE" "$rootfs.tmp.tar" "${srcs[@]}"
    mv "$rootfs.tmp.tar" "$rootfs"
  fi

  layout="$CACHE/oci"
  [ -d "$layout" ] || umoci init --layout "$layout"
  base="base-$key"
  if ! umoci ls --layout "$layout" | grep -qx "$base"; then
    umoci rm --image "$layout:$base.tmp" 2>/dev/null || true
    umoci new --image "$layout:$base.tmp"
    umoci raw add-layer --image "$layout:$base.tmp" "$rootfs"
    umoci tag --image "$layout:$base.tmp" "$base"
    umoci rm --image "$layout:$base.tmp"
  fi

  # The project layer.
  local stage="$work/stage"
  mkdir -p "$stage/app" "$stage/usr/local/bin" "$stage/etc"
  (cd "$repo" && echo "$files" | tar -T - -cf -) | tar -C "$stage/app" -xf -
  mkdir -p "$stage/app/bytecode"
  cp -a "$repo/bytecode/build" "$stage/app/bytecode/"
  install -m 0755 "$deno_bin" "$stage/usr/local/bin/deno"
  local entries=() e
  for e in runtime/main.ts controller/main.ts cli/main.ts examples/map_reader.ts examples/map_volume.ts; do
    [ -f "$stage/app/$e" ] && entries+=("$e")
  done
  (cd "$stage/app" && DENO_DIR="$stage/deno-dir" DENO_NO_UPDATE_CHECK=1 "$deno_bin" cache --quiet "${entries[@]}")
  tar -xOf "$rootfs" ./etc/group >"$stage/etc/group"
  grep -q '^bpfd:' "$stage/etc/group" || echo "bpfd:x:$BPFD_GID:" >>"$stage/etc/group"
  if tar -xOf "$rootfs" ./etc/gshadow >"$stage/etc/gshadow" 2>/dev/null; then
    grep -q '^bpfd:' "$stage/etc/gshadow" || echo "bpfd:!::" >>"$stage/etc/gshadow"
    chmod 0640 "$stage/etc/gshadow"
  else
    rm -f "$stage/etc/gshadow"
  fi
  chmod -R a+rX "$stage/app" "$stage/deno-dir"
  tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cf "$work/layer.tar" \
    app usr etc deno-dir
  local tag="bpfd-${inputs:0:12}"
  umoci rm --image "$layout:$tag" 2>/dev/null || true
  umoci raw add-layer --image "$layout:$base" --tag "$tag" "$work/layer.tar"
  umoci config --image "$layout:$tag" --config.workingdir /app \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env DENO_DIR=/deno-dir --config.env DENO_NO_UPDATE_CHECK=1 \
    --config.entrypoint deno --config.cmd run --config.cmd -A --config.cmd --cached-only \
    --config.cmd runtime/main.ts --config.label "io.bpfd.group.gid=$BPFD_GID"
  mkdir -p "$(dirname "$out")"
  archive "$layout" "$tag" "$ref" "$out"
  echo "$inputs" >"$out.inputs"
  # Only the base stays in the layout: each build's project layer lives in its archive.
  umoci rm --image "$layout:$tag"
  umoci gc --layout "$layout"
  log "$ref: $out ($(du -h "$out" | cut -f1))"
}

busybox_images() {
  local dir=$1 pause=$2 busybox=$3 want
  want="$(dpkg-query -W -f='${Version}' busybox-static) $pause $busybox recipe 1"
  if [ "$(cat "$dir/busybox.inputs" 2>/dev/null)" = "$want" ] && [ -f "$dir/pause.tar" ] && [ -f "$dir/busybox.tar" ]; then
    return 0
  fi
  mkdir -p "$dir"
  local l="$work/oci" b="$work/bundle" a
  umoci init --layout "$l"
  umoci new --image "$l:bb"
  umoci unpack --image "$l:bb" "$b" >/dev/null
  mkdir -p "$b/rootfs/bin" "$b/rootfs/tmp" "$b/rootfs/etc"
  cp /bin/busybox "$b/rootfs/bin/busybox"
  for a in sh sleep ls cat echo ip ping id mount nc wc grep; do ln -s busybox "$b/rootfs/bin/$a"; done
  umoci repack --image "$l:bb" "$b" >/dev/null
  umoci config --image "$l:bb" --tag pause --config.env PATH=/bin \
    --config.entrypoint /bin/sleep --config.cmd 2147483647
  umoci config --image "$l:bb" --tag sh --config.env PATH=/bin --config.entrypoint /bin/sh
  archive "$l" pause "$pause" "$dir/pause.tar"
  archive "$l" sh "$busybox" "$dir/busybox.tar"
  echo "$want" >"$dir/busybox.inputs"
  log "$pause, $busybox: $dir"
}

case "${1:-}" in
bpfd) bpfd_image "${2:?archive}" "${3:?ref}" ;;
busybox) busybox_images "${2:?dir}" "${3:?pause ref}" "${4:?busybox ref}" ;;
*)
  echo "usage: $0 bpfd ARCHIVE REF | busybox DIR PAUSE_REF BUSYBOX_REF" >&2
  exit 2
  ;;
esac
