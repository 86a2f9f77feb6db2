/**
 * A simulation of many node runtimes in one process, for scale benchmarks and tests of the controller:
 * it serves the node API's `reconcile` (the real request and answer schemas of crds/reconcile.ts) at
 * `http://127.0.0.1:<port>/n/<node>`, keeps each simulated node's programs in memory (no kernel), and
 * answers after a configurable latency, failing a configurable share of calls. It is not a node runtime:
 * nothing is loaded; it counts what a real node would do (loads, reloads, modifies) and how many nodes are
 * between bytecode versions at once.
 *
 * @example
 * ```ts
 * await using sim = await SimulatedNodes.start({ latencyMs: 5 });
 * sim.address("node-1"); // "http://127.0.0.1:PORT/n/node-1", the Node's bpfd.io/address annotation
 * ```
 * @module
 */
import { ReconcileInput, type ReconcileOutput } from "../../crds/reconcile.ts";
import type { BpfProgramConfigSpec, ProgramState } from "../../crds/schema.ts";

/** How the simulated nodes behave; every field may be changed while they run. */
export interface SimulationOptions {
  /** Time before each answer, in ms (plus up to `jitterMs`). */
  latencyMs?: number;
  jitterMs?: number;
  /** Extra time a reload (new bytecode) takes, in ms: the node is between versions meanwhile. */
  reloadMs?: number;
  /** Share of calls answered with HTTP 503 (0..1), per node when `failing` names it, else for all. */
  failRate?: number;
  /** Nodes that fail (`failRate` of their calls); empty: every node. */
  failing?: Set<string>;
}

/** One owner's program on a simulated node. */
interface SimProgram {
  id: number;
  bytecode: string;
  digest?: string;
  spec: BpfProgramConfigSpec;
}

/** What the simulated nodes counted. */
export interface SimulationStats {
  calls: number;
  failures: number;
  loads: number;
  reloads: number;
  modifies: number;
  waiting: number;
  /** Nodes in a reload right now, and the most at once. */
  betweenVersions: number;
  peakBetweenVersions: number;
}

/** Many simulated node runtimes behind one HTTP server. */
export class SimulatedNodes implements AsyncDisposable {
  readonly nodes = new Map<string, Map<string, SimProgram>>();
  /** The digest each image URL's tag names now (set it to simulate a re-pushed tag). */
  readonly digests = new Map<string, string>();
  readonly stats: SimulationStats = {
    calls: 0,
    failures: 0,
    loads: 0,
    reloads: 0,
    modifies: 0,
    waiting: 0,
    betweenVersions: 0,
    peakBetweenVersions: 0,
  };
  #nextId = 1;

  private constructor(readonly server: Deno.HttpServer<Deno.NetAddr>, readonly opts: SimulationOptions) {}

  /** Starts the server on a free loopback port. */
  static start(opts: SimulationOptions = {}): Promise<SimulatedNodes> {
    const holder: { sim?: SimulatedNodes } = {};
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => holder.sim!.handle(req),
    );
    holder.sim = new SimulatedNodes(server, opts);
    return Promise.resolve(holder.sim);
  }

  /** The address a Node's `bpfd.io/address` annotation gives for simulated node `name`. */
  address(name: string): string {
    return `http://127.0.0.1:${this.server.addr.port}/n/${name}`;
  }

  /** The digest of the program `owner` runs on `node` (undefined: none, or not from an image). */
  digestOn(node: string, owner: string): string | undefined {
    return this.nodes.get(node)?.get(owner)?.digest;
  }

  async handle(req: Request): Promise<Response> {
    const m = new URL(req.url).pathname.match(/^\/n\/([^/]+)\/v1\/functions\/reconcile$/);
    if (!m || req.method !== "POST") {
      return Response.json({ error: { message: "not found" } }, { status: 404 });
    }
    const node = m[1];
    this.stats.calls++;
    const o = this.opts;
    await sleep((o.latencyMs ?? 0) + Math.random() * (o.jitterMs ?? 0));
    const failsHere = !o.failing?.size || o.failing.has(node);
    if (failsHere && Math.random() < (o.failRate ?? 0)) {
      this.stats.failures++;
      return Response.json(
        { error: { code: "unavailable", message: `simulated node ${node}: simulated failure` } },
        { status: 503 },
      );
    }
    const parsed = ReconcileInput.safeParse(await req.json());
    if (!parsed.success) {
      return Response.json({ error: { code: "invalid_argument", message: parsed.error.message } }, {
        status: 400,
      });
    }
    return Response.json(await this.#reconcile(node, parsed.data));
  }

  async #reconcile(node: string, input: typeof ReconcileInput._output): Promise<ReconcileOutput> {
    const programs = this.nodes.get(node) ?? new Map<string, SimProgram>();
    this.nodes.set(node, programs);
    const have = programs.get(input.name);
    const actions: string[] = [];
    const out = (p: SimProgram | undefined, waiting?: string): ReconcileOutput => ({
      name: input.name,
      programs: p ? { [String(p.id)]: stateOf(p) } : {},
      changed: actions.length > 0,
      actions,
      ...(waiting ? { waiting } : {}),
    });
    const spec = input.spec;
    if (spec === null) {
      if (have) actions.push(`unloaded ${have.id} (not desired)`);
      programs.delete(input.name);
      return out(undefined);
    }
    const b = spec.bytecode;
    const digest = b.imageurl ? this.digests.get(b.imageurl) ?? "sha256:" + "0".repeat(64) : undefined;
    const bytecode = JSON.stringify([b.imageurl ?? b.path, digest, spec.name, spec.type, spec.globaldata]);
    if (have && have.bytecode === bytecode) {
      if (
        have.spec.priority !== spec.priority ||
        JSON.stringify(have.spec.attachpoint) !== JSON.stringify(spec.attachpoint)
      ) {
        this.stats.modifies++;
        actions.push(`modified ${have.id}`);
      }
      have.spec = spec;
      return out(have);
    }
    if (have && input.allowReload === false) {
      this.stats.waiting++;
      return out(have, "a bytecode change waits for its turn in the roll-out");
    }
    const next: SimProgram = { id: this.#nextId++, bytecode, digest, spec };
    if (have) {
      this.stats.reloads++;
      this.stats.betweenVersions++;
      this.stats.peakBetweenVersions = Math.max(this.stats.peakBetweenVersions, this.stats.betweenVersions);
      try {
        await sleep(this.opts.reloadMs ?? 0);
      } finally {
        this.stats.betweenVersions--;
      }
      actions.push(`loaded ${next.id}`, `unloaded ${have.id} (replaced)`);
    } else {
      this.stats.loads++;
      actions.push(`loaded ${next.id}`);
    }
    programs.set(input.name, next);
    return out(next);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.shutdown();
  }
}

function stateOf(p: SimProgram): ProgramState {
  return {
    name: p.spec.name,
    type: p.spec.type,
    attachpoint: p.spec.attachpoint,
    maps: {},
    ...(p.digest ? { digest: p.digest } : {}),
  };
}

const sleep = (ms: number) => ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
