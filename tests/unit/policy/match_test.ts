import assert from "node:assert/strict";
import {
  compilePattern,
  compileTracepoint,
  fromRegistry,
  imageRepository,
  normalizePath,
  underDirectory,
} from "../../../policy/match.ts";

Deno.test("patterns: exact, wildcards, and /regex/ matching the whole name", () => {
  assert.ok(compilePattern("eth0")("eth0"));
  assert.ok(!compilePattern("eth0")("eth01"));
  assert.ok(compilePattern("tcp_*")("tcp_v4_connect"));
  assert.ok(!compilePattern("tcp_*")("xtcp_v4"));
  assert.ok(compilePattern("a.b*")("a.bc") && !compilePattern("a.b*")("axbc"));
  assert.ok(compilePattern("/veth[0-9]+/")("veth12"));
  assert.ok(!compilePattern("/veth/")("myveth0"), "a regex matches the whole name");
  assert.throws(() => compilePattern("/([/"));
});

Deno.test("tracepoints: a group, group/name, wildcards", () => {
  assert.ok(compileTracepoint("syscalls")("syscalls/sys_enter_openat"));
  assert.ok(!compileTracepoint("syscalls")("syscallsx/y"));
  assert.ok(compileTracepoint("sched/sched_switch")("sched/sched_switch"));
  assert.ok(compileTracepoint("syscalls/sys_enter_*")("syscalls/sys_enter_read"));
  assert.ok(!compileTracepoint("syscalls/sys_enter_*")("syscalls/sys_exit_read"));
});

Deno.test("paths: lexical normalization and path-boundary prefixes", () => {
  assert.equal(normalizePath("/opt//bpf/./x/../y.o"), "/opt/bpf/y.o");
  assert.ok(underDirectory("/opt/bpf/x.o", "/opt/bpf"));
  assert.ok(underDirectory("/opt/bpf/x.o", "/opt/bpf/"));
  assert.ok(!underDirectory("/opt/bpfx/x.o", "/opt/bpf"));
  assert.ok(!underDirectory("/opt/bpf/../../etc/x.o", "/opt/bpf"));
  assert.ok(underDirectory("/anything", "/"));
});

Deno.test("registries: host and path boundaries, Docker Hub names made explicit", () => {
  assert.equal(imageRepository("nginx"), "docker.io/library/nginx");
  assert.equal(imageRepository("org/x:v1"), "docker.io/org/x");
  assert.equal(imageRepository("localhost:5000/x/y@sha256:ab"), "localhost:5000/x/y");
  assert.equal(imageRepository("Quay.IO/o/x:v1"), "quay.io/o/x");
  assert.ok(fromRegistry("quay.io/team-net/x:v1", "quay.io/team-net"));
  assert.ok(fromRegistry("quay.io/team-net/x:v1", "quay.io"));
  assert.ok(!fromRegistry("quay.io/team-netx/x:v1", "quay.io/team-net"));
  assert.ok(!fromRegistry("quay.io.evil.com/team-net/x", "quay.io"));
  assert.ok(!fromRegistry("evil.com/quay.io/x", "quay.io"));
  assert.ok(fromRegistry("127.0.0.1:5000/bpf/x@sha256:00", "127.0.0.1:5000"));
  assert.ok(!fromRegistry("127.0.0.1:50001/bpf/x", "127.0.0.1:5000"));
  assert.ok(fromRegistry("nginx", "docker.io/library"));
});
