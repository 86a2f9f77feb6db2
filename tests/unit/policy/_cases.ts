/**
 * One table of policy cases, decided three ways that must agree: by the evaluator (evaluate_test.ts), by
 * `bpfd policy check` (cli_test.ts) and by the admission webhook on a real API server
 * (tests/k8s/policy/admission_test.ts). Subjects are ones a test API server can give real tokens:
 * token-file users, and ServiceAccounts (whose groups name their namespace).
 *
 * @module
 */
import type { BpfPolicy } from "../../../model/policy.ts";

/** A subject as the API server reports it. */
export interface CaseUser {
  user: string;
  groups: string[];
}

const sa = (ns: string, name: string): CaseUser => ({
  user: `system:serviceaccount:${ns}:${name}`,
  groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
});

/** The subjects of the table. */
export const USERS = {
  alice: { user: "alice", groups: ["system:authenticated"] },
  bob: { user: "bob", groups: ["system:authenticated"] },
  carol: { user: "carol", groups: ["system:authenticated"] },
  agent: sa("monitoring", "agent"),
  builder: sa("team-dev", "builder"),
} satisfies Record<string, CaseUser>;

/** The policy of the table (without bpfd's default policy). */
export const TEAM_POLICY: BpfPolicy = {
  apiVersion: "bpfd.io/v1alpha1",
  kind: "BpfPolicy",
  metadata: { name: "team" },
  spec: {
    rules: [
      {
        name: "xdp-eth0",
        subjects: [{ kind: "User", name: "alice" }],
        programTypes: ["XDP"],
        interfaces: ["eth0"],
        priority: { min: 100 },
        registries: ["quay.io/team-net"],
      },
      {
        name: "tracing",
        subjects: [{ kind: "ServiceAccount", namespace: "monitoring", name: "agent" }],
        programTypes: ["Tracepoint", "Kprobe"],
        tracepoints: ["syscalls"],
        functions: ["tcp_*"],
      },
      {
        name: "dev-paths",
        subjects: [{ kind: "Group", name: "system:serviceaccounts:team-dev" }],
        programTypes: ["TC"],
        bytecodePaths: ["/opt/bpf"],
      },
      { name: "bob-xdp", subjects: [{ kind: "User", name: "bob" }], programTypes: ["XDP"] },
      {
        name: "no-veth-for-bob",
        effect: "Deny",
        subjects: [{ kind: "User", name: "bob" }],
        interfaces: ["/veth.*/"],
      },
    ],
  },
};

const IMAGE = "quay.io/team-net/xdp-counter:v1";
const xdp = (iface: string, priority: number, bytecode: Record<string, string> = { imageurl: IMAGE }) => ({
  name: "xdp_counter",
  type: "XDP",
  priority,
  attachpoint: { interface: iface },
  bytecode,
});
const tracepoint = (tp: string) => ({
  name: "tp_counter",
  type: "Tracepoint",
  attachpoint: { tracepoint: tp },
  bytecode: { imageurl: "quay.io/monitoring/tp:v1" },
});
const kprobe = (fn: string, imageurl = "quay.io/monitoring/kp:v1") => ({
  name: "kp_counter",
  type: "Kprobe",
  attachpoint: { functionname: fn },
  bytecode: { imageurl },
});
const tc = (path: string) => ({
  name: "tc_counter",
  type: "TC",
  priority: 50,
  attachpoint: { interface: "eth0", direction: "ingress" },
  bytecode: { path },
});

/** One case: who applies which config spec, and what the policy says (the rule and field of a refusal). */
export interface PolicyCase {
  name: string;
  as: keyof typeof USERS;
  spec: Record<string, unknown>;
  allowed: boolean;
  rule?: string;
  field?: string;
}

/** The table. Names are valid Kubernetes object names (the k8s test applies each as a config). */
export const CASES: PolicyCase[] = [
  { name: "alice-xdp-eth0-100", as: "alice", spec: xdp("eth0", 100), allowed: true, rule: "team/xdp-eth0" },
  { name: "alice-xdp-eth0-1000", as: "alice", spec: xdp("eth0", 1000), allowed: true, rule: "team/xdp-eth0" },
  {
    name: "alice-xdp-eth0-10",
    as: "alice",
    spec: xdp("eth0", 10),
    allowed: false,
    rule: "team/xdp-eth0",
    field: "spec.priority",
  },
  {
    name: "alice-xdp-eth1",
    as: "alice",
    spec: xdp("eth1", 100),
    allowed: false,
    rule: "team/xdp-eth0",
    field: "spec.attachpoint.interface",
  },
  {
    name: "alice-kprobe",
    as: "alice",
    spec: kprobe("tcp_v4_connect", IMAGE),
    allowed: false,
    rule: "team/xdp-eth0",
    field: "spec.type",
  },
  {
    name: "alice-path",
    as: "alice",
    spec: xdp("eth0", 100, { path: "/opt/bpf/xdp_counter.bpf.o" }),
    allowed: false,
    rule: "team/xdp-eth0",
    field: "spec.bytecode.path",
  },
  {
    name: "alice-other-registry",
    as: "alice",
    spec: xdp("eth0", 100, { imageurl: "quay.io/team-netx/xdp:v1" }),
    allowed: false,
    rule: "team/xdp-eth0",
    field: "spec.bytecode.imageurl",
  },
  {
    name: "agent-syscalls",
    as: "agent",
    spec: tracepoint("syscalls/sys_enter_openat"),
    allowed: true,
    rule: "team/tracing",
  },
  {
    name: "agent-sched",
    as: "agent",
    spec: tracepoint("sched/sched_switch"),
    allowed: false,
    rule: "team/tracing",
    field: "spec.attachpoint.tracepoint",
  },
  {
    name: "agent-kprobe-tcp",
    as: "agent",
    spec: kprobe("tcp_v4_connect"),
    allowed: true,
    rule: "team/tracing",
  },
  {
    name: "agent-kprobe-vfs",
    as: "agent",
    spec: kprobe("vfs_read"),
    allowed: false,
    rule: "team/tracing",
    field: "spec.attachpoint.functionname",
  },
  {
    name: "builder-tc-path",
    as: "builder",
    spec: tc("/opt/bpf/tc_counter.bpf.o"),
    allowed: true,
    rule: "team/dev-paths",
  },
  {
    name: "builder-tc-escape",
    as: "builder",
    spec: tc("/opt/bpf/../../etc/tc.o"),
    allowed: false,
    rule: "team/dev-paths",
    field: "spec.bytecode.path",
  },
  {
    name: "builder-tc-sibling",
    as: "builder",
    spec: tc("/opt/bpfx/tc.o"),
    allowed: false,
    rule: "team/dev-paths",
    field: "spec.bytecode.path",
  },
  { name: "bob-xdp-eth0", as: "bob", spec: xdp("eth0", 5), allowed: true, rule: "team/bob-xdp" },
  {
    name: "bob-xdp-veth",
    as: "bob",
    spec: xdp("veth12", 500),
    allowed: false,
    rule: "team/no-veth-for-bob",
    field: "spec.attachpoint.interface",
  },
  {
    name: "carol-anything",
    as: "carol",
    spec: xdp("eth0", 500),
    allowed: false,
    field: "metadata.annotations[bpfd.io/requested-by]",
  },
];
