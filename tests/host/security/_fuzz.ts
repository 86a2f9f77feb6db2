/**
 * A seeded generator of bad requests for every node function: a plausible request mutated one to three
 * times (wrong types, huge and negative numbers, unicode and NUL, deep and huge JSON, unknown and missing
 * fields), or broken at the HTTP level (not JSON, truncated, odd content types). Shared by the CI test
 * (tests/host/security/fuzz_test.ts) and the larger run in `deno task bench fuzz`.
 *
 * @module
 */

/** One generated request. */
export interface FuzzRequest {
  fn: string;
  contentType: string;
  body: string;
}

/** What the bases may point at: objects, a namespace and interface the test made. */
export interface FuzzTargets {
  objectPath: string;
  netns: string;
  iface: string;
  /** Paths that must answer 4xx quickly (a FIFO, a directory, a missing file). */
  badPaths: string[];
}

/** mulberry32: a small seeded PRNG, the same sequence for the same seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// deno-lint-ignore no-explicit-any
type Json = any;

function bases(t: FuzzTargets, ids: number[]): Record<string, Json[]> {
  const xdp = { type: "xdp", iface: t.iface, netns: t.netns };
  const id = ids[0] ?? 1;
  return {
    load: [
      {
        bytecode: { path: t.objectPath },
        programs: [{ name: "xdp_counter", type: "xdp" }],
        metadata: { fuzz: "1" },
      },
      { bytecode: { path: t.objectPath }, programs: [{ name: "xdp_counter", type: "xdp" }], globalData: {} },
    ],
    attach: [
      { programId: id, attach: { ...xdp, priority: 50, proceedOn: ["pass"] } },
      {
        programId: id,
        attach: { type: "tc", iface: t.iface, netns: t.netns, direction: "ingress", priority: 5 },
      },
    ],
    detach: [{ linkId: 1 }],
    modify: [{ linkId: 1, priority: 10, proceedOn: ["pass", "dispatcher_return"] }],
    unload: [{ programId: id }],
    list: [{}, { all: true }, { type: "xdp", metadata: { fuzz: "1" } }],
    get: [{ programId: id }],
    pull: [{ image: { url: "localhost:1/fuzz/none:latest" } }],
    reconcile: [
      { name: "fuzz-node", config: "fuzz", spec: null },
      {
        name: "fuzz-node",
        config: "fuzz",
        spec: {
          name: "xdp_counter",
          type: "XDP",
          nodeselector: {},
          priority: 0,
          attachpoint: { interface: t.iface },
          bytecode: { path: t.objectPath },
        },
      },
    ],
  };
}

const ODD_TYPES = [
  "text/plain",
  "",
  "application/x-www-form-urlencoded",
  "application/jsonx",
  "multipart/form-data",
];

/** Requests, `count` of them, from `seed`; `ids` are program ids that exist (for plausible bases). */
export function* fuzzRequests(
  seed: number,
  count: number,
  targets: FuzzTargets,
  ids: () => number[],
  avoid: (s: string) => boolean,
): Generator<FuzzRequest> {
  const rnd = seeded(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const str = (): string => {
    for (;;) {
      const s = pick([
        () => "",
        () => "x".repeat(1 + int(20)),
        () => "é😀\u202e\uffff".repeat(1 + int(8)),
        () => `a\0b`,
        () => "\0",
        () => "y".repeat(4097 + int(100_000)),
        () => "../../../etc/passwd",
        () => pick(targets.badPaths),
        () => String.fromCharCode(...Array.from({ length: 1 + int(12) }, () => int(0x3000))),
        () => "$(reboot)",
        () => "%s%n%x",
      ])();
      if (!avoid(s)) return s;
    }
  };
  const num = () =>
    pick([0, -1, 1, 2 ** 31, 2 ** 32 + 1, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e-308, 0.5, 4096, 65536]);
  const value = (depth = 0): Json =>
    pick([
      () => num(),
      () => str(),
      () => pick([true, false, null]),
      () => (depth < 3 ? Array.from({ length: int(4) }, () => value(depth + 1)) : []),
      () => (depth < 3
        ? Object.fromEntries(Array.from({ length: int(4) }, () => [str().slice(0, 40), value(depth + 1)]))
        : {}),
      () => Array.from({ length: 10_000 + int(20_000) }, () => int(10)),
      () => JSON.parse("[".repeat(2000) + "]".repeat(2000)),
    ])();
  const mutate = (root: Json): Json => {
    // Collect the containers and keys, then change one place.
    const places: Array<[Json, string | number]> = [];
    const walk = (v: Json) => {
      if (v && typeof v === "object") {
        for (const k of Object.keys(v)) {
          places.push([v, Array.isArray(v) ? Number(k) : k]);
          walk(v[k]);
        }
      }
    };
    walk(root);
    if (!places.length || rnd() < 0.15) {
      return pick([value(), root, [root], { ...root, [str().slice(0, 30)]: value() }]);
    }
    const [parent, key] = pick(places);
    const op = int(5);
    // Never drop a netns: without it the interface would be looked up in this machine's own namespace.
    if (op === 0 && key !== "netns") delete parent[key];
    else if (op === 1) parent[str().slice(0, 30) || "extra"] = value();
    else if (key !== "netns") parent[key] = value();
    return root;
  };
  for (let i = 0; i < count; i++) {
    const fn = rnd() < 0.03 ? str().slice(0, 30) : pick(Object.keys(bases(targets, [])));
    const base = structuredClone(pick(bases(targets, ids())[fn] ?? [{}]));
    let body: string;
    const r = rnd();
    if (r < 0.08) body = pick(["{", "nope", "[1,2", '{"a":1}}', "\0", '{"x":"\ud800"}', "[".repeat(100_000)]);
    else if (r < 0.12) body = JSON.stringify(base).slice(0, int(JSON.stringify(base).length));
    else {
      let v = base;
      for (let m = 0, n = 1 + int(3); m < n; m++) v = mutate(v);
      body = JSON.stringify(v) ?? "null";
    }
    const contentType = rnd() < 0.05 ? pick(ODD_TYPES) : "application/json";
    yield { fn, contentType, body };
  }
}
