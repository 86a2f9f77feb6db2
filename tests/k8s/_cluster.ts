/**
 * A test cluster for the controller: a real kube-apiserver (tests/_kube.ts) with bpfd's CRDs, the `bpfd`
 * namespace and its `bpfd-config` ConfigMap; node runtimes as real processes (runtime/main.ts), each in
 * its own network namespace with its own eth0 (tests/k8s/_nodes.ts) and its own Node object; controllers
 * as real processes (controller/main.ts). `stop()` unloads what the runtimes still hold, ends every
 * process it started, unmounts their bpffs and deletes namespaces and temp dirs — also after a failure.
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { type Kube, startKube, waitFor } from "../_kube.ts";
import { NodeNet } from "./_nodes.ts";
import { RUNTIME_DENO_ARGS } from "../../runtime/launch.ts";
import { CONTROLLER_DENO_ARGS } from "../../controller/launch.ts";

const root = new URL("../..", import.meta.url).pathname;
export const CRDS_DIR = `${root}crds/`;

// deno-lint-ignore no-explicit-any
export type Json = any;

/**
 * A command prefix that appends the command's stdout and stderr to `file` and then execs it (same pid, so
 * signals and --pdeathsig reach it). The file takes the output directly: a pipe the test would have to
 * drain could fill up and stall the process.
 */
function toLog(file: string): string[] {
  return ["sh", "-c", `exec "$@" >>'${file}' 2>&1`, "sh"];
}

/** A node runtime process in a node's namespace. */
/** Signals a child this file started (if any) and waits for it to end. */
async function stopChild(child: Deno.ChildProcess | undefined, signal: Deno.Signal): Promise<void> {
  if (!child) return;
  try {
    child.kill(signal);
  } catch { /* gone */ }
  await child.status;
}

export class NodeRuntime {
  child?: Deno.ChildProcess;
  readonly port = 50052;
  #client = Deno.createHttpClient({});

  constructor(
    readonly name: string,
    readonly net: NodeNet,
    readonly dir: string,
    readonly logFile: string,
    /** A runtime configuration file (--config), for options that have no flag; read at each start(). */
    public configFile?: string,
  ) {}

  get address(): string {
    return `${this.net.addr}:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = new Deno.Command("setpriv", {
      args: [
        "--pdeathsig",
        "KILL",
        "--",
        ...toLog(this.logFile),
        ...this.net.nsenter,
        Deno.execPath(),
        ...RUNTIME_DENO_ARGS,
        `${root}runtime/main.ts`,
        ...(this.configFile ? ["--config", this.configFile] : []),
        "--state-dir",
        this.dir,
        "--bpffs",
        `${this.dir}/fs`,
        "--socket",
        "",
        "--listen",
        this.address,
        // Plain HTTP inside the test's own network namespace: the secure listener has its own tests.
        "--insecure-tcp-without-auth-i-understand-this-is-root",
        "--log-level",
        "info",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitFor(
      `runtime ${this.name} up`,
      async () => {
        const r = await fetch(`http://${this.address}/healthz`, {
          client: this.#client,
          signal: AbortSignal.timeout(1000),
        });
        await r.body?.cancel();
        return r.ok;
      },
      30000,
      100,
    ).catch(async (err) => {
      const log = await Deno.readTextFile(this.logFile).catch(() => "(no log)");
      err.message += `\nits log (last lines):\n${log.split("\n").slice(-20).join("\n")}`;
      throw err;
    });
  }

  /** Calls a function on the runtime. */
  async call(fn: string, input: unknown): Promise<{ status: number; body: Json }> {
    const r = await fetch(`http://${this.address}/v1/functions/${fn}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(input),
      client: this.#client,
      signal: AbortSignal.timeout(20000),
    });
    return { status: r.status, body: await r.json() };
  }

  /** The programs the runtime manages. */
  async programs(): Promise<Json[]> {
    const r = await this.call("list", {});
    if (r.status !== 200) throw new Error(`list on ${this.name}: ${JSON.stringify(r.body)}`);
    return r.body.programs;
  }

  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    await stopChild(this.child, signal);
    this.child = undefined;
  }

  /** Unloads everything, stops the process, unmounts its bpffs, removes its dir. */
  async destroy(): Promise<void> {
    if (this.child) {
      try {
        for (const p of (await this.programs()).reverse()) await this.call("unload", { programId: p.id });
      } catch { /* best effort: the unmount below drops the pins anyway */ }
      await this.kill("SIGTERM");
    }
    await new Deno.Command("umount", { args: [`${this.dir}/fs`], stderr: "null" }).output();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    this.#client.close();
  }
}

/** A controller process. */
export class ControllerProcess {
  child?: Deno.ChildProcess;
  constructor(readonly id: string, readonly args: string[], readonly logFile: string) {}

  start(): Promise<void> {
    this.child = new Deno.Command("setpriv", {
      args: [
        "--pdeathsig",
        "KILL",
        "--",
        ...toLog(this.logFile),
        Deno.execPath(),
        ...CONTROLLER_DENO_ARGS,
        `${root}controller/main.ts`,
        ...this.args,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    return Promise.resolve();
  }

  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    await stopChild(this.child, signal);
    this.child = undefined;
  }
}

export interface ClusterOptions {
  /** Node names and labels. */
  nodes: Array<{ name: string; labels?: Record<string, string> }>;
  /** bpfd-config data. */
  settings?: Record<string, string>;
  /**
   * Node runtimes publish their inventory with the admin's kubeconfig (reaching the API server through
   * forwarders, tests/k8s/_forward.ts); these are the config's `inventory` settings.
   */
  inventory?: Record<string, unknown>;
}

export class TestCluster {
  readonly runtimes = new Map<string, NodeRuntime>();
  readonly controllers: ControllerProcess[] = [];
  readonly custom: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;
  readonly dir: string;
  #inventory?: Record<string, unknown>;
  #forwarders: Deno.ChildProcess[] = [];

  private constructor(readonly kube: Kube, dir: string) {
    this.dir = dir;
    const kc = kube.kubeConfig();
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  static async start(opts: ClusterOptions): Promise<TestCluster> {
    const kube = await startKube();
    const dir = await Deno.makeTempDir({ prefix: "bpfd-cluster-" });
    const c = new TestCluster(kube, dir);
    c.#inventory = opts.inventory;
    try {
      const r = await kube.kubectl(["apply", "-f", CRDS_DIR]);
      if (r.code !== 0) throw new Error(`applying CRDs: ${r.stderr}`);
      await c.core.createNamespace({ body: { metadata: { name: "bpfd" } } });
      await c.core.createNamespacedConfigMap({
        namespace: "bpfd",
        body: { metadata: { name: "bpfd-config" }, data: opts.settings ?? {} },
      });
      await Promise.all(opts.nodes.map((n, i) => c.addNode(n.name, n.labels ?? {}, i + 1)));
      await waitFor(
        "CRDs served",
        async () => {
          await c.custom.listClusterCustomObject({
            group: "bpfd.io",
            version: "v1alpha1",
            plural: "bpfprograms",
          });
          return true;
        },
        20000,
        200,
      );
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** A node: namespace + eth0, a runtime process in it, and its Node object (InternalIP = its eth0). */
  async addNode(name: string, labels: Record<string, string>, index: number): Promise<NodeRuntime> {
    const net = await NodeNet.create(index);
    let configFile: string | undefined;
    if (this.#inventory) {
      await this.#forwardApiServer(net);
      configFile = `${this.dir}/${name}.json`;
      await Deno.writeTextFile(
        configFile,
        JSON.stringify({
          auth: { mode: "none", nodeName: name },
          inventory: { kubeconfig: this.kube.kubeconfig(), ...this.#inventory },
        }),
      );
    }
    const rt = new NodeRuntime(name, net, `${this.dir}/${name}`, `${this.dir}/${name}.log`, configFile);
    this.runtimes.set(name, rt);
    await rt.start();
    await this.core.createNode({
      body: {
        metadata: { name, labels: { "kubernetes.io/hostname": name, ...labels } },
        status: {
          addresses: [{ type: "InternalIP", address: net.addr }, { type: "Hostname", address: name }],
        },
      },
    });
    return rt;
  }

  /** Makes the API server's 127.0.0.1:port reachable inside the node's namespace (two forwarders). */
  async #forwardApiServer(net: NodeNet): Promise<void> {
    const port = new URL(this.kube.server).port;
    const script = `${root}tests/k8s/_forward.ts`;
    const legs = [
      [Deno.execPath(), "run", "-A", script, net.hostAddr, port, "127.0.0.1", port],
      [...net.nsenter, Deno.execPath(), "run", "-A", script, "127.0.0.1", port, net.hostAddr, port],
    ];
    for (const leg of legs) {
      const child = new Deno.Command("setpriv", {
        args: ["--pdeathsig", "KILL", "--", ...leg],
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      this.#forwarders.push(child);
      const reader = child.stdout.getReader();
      await reader.read(); // "listening"
      reader.releaseLock();
      child.stdout.cancel().catch(() => {});
    }
  }

  /** Starts a controller process with short lease and resync periods. */
  async startController(id: string, extra: string[] = []): Promise<ControllerProcess> {
    const p = new ControllerProcess(id, [
      "--kubeconfig",
      this.kube.kubeconfig(),
      "--namespace",
      "bpfd",
      "--id",
      id,
      "--lease-duration",
      "3",
      "--renew-deadline",
      "2",
      "--retry-period",
      "0.5",
      ...extra,
    ], `${this.dir}/controller-${id}.log`);
    this.controllers.push(p);
    await p.start();
    return p;
  }

  async config(name: string): Promise<Json | undefined> {
    try {
      return await this.custom.getClusterCustomObject({
        group: "bpfd.io",
        version: "v1alpha1",
        plural: "bpfprogramconfigs",
        name,
      });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  async bpfPrograms(config?: string): Promise<Json[]> {
    const list = await this.custom.listClusterCustomObject({
      group: "bpfd.io",
      version: "v1alpha1",
      plural: "bpfprograms",
      ...(config ? { labelSelector: `owningConfig=${config}` } : {}),
    }) as Json;
    return list.items;
  }

  /** The last lines of every log, for failure messages. */
  async logs(lines = 15): Promise<string> {
    const out: string[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      if (!e.name.endsWith(".log")) continue;
      const text = await Deno.readTextFile(`${this.dir}/${e.name}`).catch(() => "");
      out.push(`--- ${e.name}\n${text.split("\n").slice(-lines).join("\n")}`);
    }
    return out.join("\n");
  }

  async stop(): Promise<void> {
    if (Deno.env.get("BPFD_TEST_LOGS")) console.error(await this.logs(200).catch(() => ""));
    for (const c of this.controllers) await c.kill("SIGKILL");
    for (const rt of this.runtimes.values()) await rt.destroy().catch(() => {});
    for (const f of this.#forwarders) await stopChild(f, "SIGKILL");
    for (const rt of this.runtimes.values()) await rt.net.destroy();
    await this.kube.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/**
 * A BpfProgramConfig of the XDP counter on eth0 at priority 50, as JSON text for `kubectl apply -f -`;
 * `spec` adds or overrides fields (the bytecode path defaults to one only simulated nodes accept).
 */
export function xdpCounterConfig(name: string, spec: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: "bpfd.io/v1alpha1",
    kind: "BpfProgramConfig",
    metadata: { name },
    spec: {
      name: "xdp_counter",
      type: "XDP",
      priority: 50,
      attachpoint: { interface: "eth0" },
      bytecode: { path: "/simulated/xdp_counter.bpf.o" },
      ...spec,
    },
  });
}
