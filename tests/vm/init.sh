#!/bin/sh
# /init of the VM tier's guest (busybox sh, PID 1). Sets up what the host tier has — proc, sys, devtmpfs,
# bpffs at /sys/fs/bpf, tracefs, debugfs, cgroup2, lo up, the network modules — runs the `deno test`
# command that tests/vm/run.sh wrote into /bpfd-vm/, and hands the results back to the host on the second
# and third serial ports (ttyS1: the JUnit report, ttyS2: the exit status), then powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb NO_COLOR=1 BPFD_VM=1

say() { echo "bpfd-vm: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
finish() {
  status=$1
  sync
  if [ -s /tmp/junit.xml ]; then
    stty -F /dev/ttyS1 raw -echo 2>/dev/null
    cat /tmp/junit.xml >/dev/ttyS1
  fi
  stty -F /dev/ttyS2 raw -echo 2>/dev/null
  echo "status $status" >/dev/ttyS2
  say "done at $(uptime_s)s, exit status $status"
  sync
  poweroff -f
  sleep 5
  echo o >/proc/sysrq-trigger
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /sys/fs/bpf /sys/kernel/tracing /sys/kernel/debug /sys/fs/cgroup
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
chmod 1777 /tmp
ln -sf /proc/self/fd /dev/fd
say "init up at $(uptime_s)s on linux $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 / 1024 " MiB"}' /proc/meminfo)"

ip link set lo up
hostname bpfd-vm
for m in veth dummy sch_ingress cls_bpf act_bpf; do
  modprobe "$m" || say "modprobe $m failed"
done

[ -f /bpfd-vm/env ] && . /bpfd-vm/env
cd /bpfd || finish 97

# deno test's output goes to the console as it happens; its report and status come back on ttyS1/ttyS2.
. /bpfd-vm/args.sh
say "running at $(uptime_s)s: deno test $*"
# Through a pipe, so that deno writes plain lines rather than redrawing a terminal.
{
  deno test -A --cached-only --junit-path=/tmp/junit.xml "$@" 2>&1
  echo $? >/tmp/deno-status
} | cat
finish "$(cat /tmp/deno-status 2>/dev/null || echo 98)"
