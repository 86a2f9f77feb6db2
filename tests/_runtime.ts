/**
 * An in-process node runtime for tests: its own state directory and its own bpffs mount in a temporary
 * directory, the functions called in-process or through the HTTP app (`app.request`, no socket). On
 * dispose it unloads every program it still manages, unmounts its bpffs and removes its directory.
 * Also: a runtime as a separate process (for kill -9 tests), kernel snapshots to prove nothing leaked,
 * and counter reads from pinned maps.
 *
 * @example
 * ```ts
 * await using rt = await startTestRuntime();
 * const { programs } = await rt.invoke("load", { bytecode: { path: bytecodePath("xdp_counter") }, programs: [...] });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { invoke as invokeFunction } from "../functions/_define.ts";
import { FUNCTIONS } from "../functions/mod.ts";
import { createApp } from "../runtime/app.ts";
import { RuntimeConfig } from "../runtime/config.ts";
import { createNode, type Node } from "../runtime/ctx.ts";
import { RUNTIME_DENO_ARGS } from "../runtime/launch.ts";
import * as bpf from "../ffi/libbpf.ts";

const root = new URL("..", import.meta.url).pathname;

/** The absolute path of a built test object, e.g. `bytecodePath("xdp_counter")`. */
export function bytecodePath(name: string): string {
  return `${root}bytecode/build/${name}.bpf.o`;
}

/** The absolute path of a built user-space fixture (bytecode/fixtures/*.c). */
export function fixturePath(name: string): string {
  return `${root}bytecode/build/${name}`;
}

/**
 * Starts the probe target fixture (bytecode/build/uprobe_target): it makes `calls` getppid syscalls and
 * calls of its probed function once `go()` is called, and `go()` returns what it printed. Killed on dispose.
 */
export function startUprobeTarget(calls: number) {
  const child = new Deno.Command(fixturePath("uprobe_target"), {
    args: [String(calls)],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  return {
    pid: child.pid,
    async go(): Promise<string> {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      const { code, stdout } = await child.output();
      assert.equal(code, 0);
      return new TextDecoder().decode(stdout).trim();
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
    },
  };
}

/** The pinned u64 counter at key 0 of an array map. */
export function readCounter(pinPath: string): number {
  return bpf.withFd(bpf.objGet(pinPath), (fd) => {
    const value = bpf.mapLookup(fd, new Uint8Array(4), 8);
    return value ? Number(new DataView(value.buffer).getBigUint64(0, true)) : 0;
  });
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** An in-process runtime on a scratch bpffs. */
export interface TestRuntime extends AsyncDisposable {
  node: Node;
  /** The HTTP API, for `app.request()` without a socket. */
  app: ReturnType<typeof createApp>;
  dir: string;
  /** Calls a function in-process; throws BpfdError on failure. */
  invoke(name: string, input: unknown): Promise<Json>;
  /** Calls a function through the HTTP app; returns status and parsed body. */
  call(name: string, input: unknown): Promise<{ status: number; body: Json }>;
  close(): Promise<void>;
}

async function umount(path: string): Promise<void> {
  await new Deno.Command("umount", { args: [path], stderr: "null" }).output();
}

/** Starts a runtime in a new temporary directory (state, bpffs at `<dir>/fs`). */
export async function startTestRuntime(
  opts: { dir?: string; config?: Record<string, unknown> } = {},
): Promise<TestRuntime> {
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "bpfd-test-" });
  const config = RuntimeConfig.parse({
    stateDir: dir,
    bpffs: `${dir}/fs`,
    socket: "",
    listen: "",
    logLevel: "warn",
    ...opts.config,
  });
  let node: Node;
  try {
    node = await createNode(config);
  } catch (err) {
    await umount(`${dir}/fs`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  const app = createApp(node, () => ({ user: "test", via: "http-test" }));
  const caller = { user: "test", via: "in-process" };
  let closed = false;
  const rt: TestRuntime = {
    node,
    app,
    dir,
    async invoke(name, input) {
      const fn = await FUNCTIONS.get(name)?.();
      if (!fn) throw new Error(`no function ${name}`);
      return invokeFunction(fn, input, node.ctxFor(caller));
    },
    async call(name, input) {
      const res = await app.request(`/v1/functions/${name}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(input),
      });
      return { status: res.status, body: await res.json() };
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        for (const p of node.state.programs().reverse()) {
          await rt.invoke("unload", { programId: p.id }).catch((err) =>
            console.error(`cleanup: unload ${p.id}:`, err)
          );
        }
      } finally {
        node.close();
        await umount(`${dir}/fs`);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
    [Symbol.asyncDispose]() {
      return rt.close();
    },
  };
  return rt;
}

/** Program and link ids alive in the kernel now. */
export function kernelSnapshot(): { programs: Set<number>; links: Set<number> } {
  return { programs: new Set(bpf.programIds()), links: new Set(bpf.linkIds()) };
}

/**
 * Programs and links alive now that were not in `before` and whose program name is in `names`. The
 * kernel frees programs asynchronously (after an RCU grace period, later still for perf-event links),
 * so this waits up to two seconds for them to go before it reports them.
 */
export async function leftovers(
  before: ReturnType<typeof kernelSnapshot>,
  names: string[],
): Promise<string[]> {
  let found: string[] = [];
  for (const deadline = Date.now() + 2000; Date.now() < deadline;) {
    found = leftoversNow(before, names);
    if (found.length === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return found;
}

function leftoversNow(before: ReturnType<typeof kernelSnapshot>, names: string[]): string[] {
  const found: string[] = [];
  const programNames = new Map<number, string>();
  for (const id of bpf.programIds()) {
    if (before.programs.has(id)) continue;
    try {
      const info = bpf.withFd(bpf.programFdById(id), bpf.programInfo);
      programNames.set(id, info.name);
      if (names.includes(info.name)) found.push(`program ${id} (${info.name})`);
    } catch { /* gone meanwhile */ }
  }
  for (const id of bpf.linkIds()) {
    if (before.links.has(id)) continue;
    try {
      const info = bpf.withFd(bpf.linkFdById(id), bpf.linkInfo);
      if (names.includes(programNames.get(info.programId) ?? "")) found.push(`link ${id} (${info.type})`);
    } catch { /* gone meanwhile */ }
  }
  return found;
}

/** A runtime as a separate process, serving on a unix socket in `dir`. */
export class RuntimeProcess {
  private constructor(readonly dir: string, readonly socket: string, readonly child: Deno.ChildProcess) {}

  /**
   * Starts `deno <denoArgs> runtime/main.ts` on `dir` (plus `extraArgs`) and waits until it answers;
   * `denoArgs` are the runtime's own unless a benchmark compares others; `netns`: inside that network
   * namespace (a name under /run/netns), where interfaces are found by name alone; `checkout`: the runtime
   * of another checkout of bpfd (a benchmark against main).
   */
  static async start(
    dir: string,
    extraArgs: string[] = [],
    { denoArgs = RUNTIME_DENO_ARGS, netns, checkout = root }: {
      denoArgs?: readonly string[];
      netns?: string;
      checkout?: string;
    } = {},
  ): Promise<RuntimeProcess> {
    const socket = `${dir}/bpfd.sock`;
    // nsenter execs deno: the child's pid is the runtime's.
    const child = new Deno.Command(netns ? "nsenter" : Deno.execPath(), {
      args: [
        ...(netns ? [`--net=/run/netns/${netns}`, Deno.execPath()] : []),
        ...denoArgs,
        `${checkout}runtime/main.ts`,
        "--state-dir",
        dir,
        "--bpffs",
        `${dir}/fs`,
        "--socket",
        socket,
        "--listen",
        "",
        "--log-level",
        Deno.env.get("BPFD_TEST_LOG_LEVEL") ?? "warn",
        ...extraArgs,
      ],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const rt = new RuntimeProcess(dir, socket, child);
    let exited: Deno.CommandStatus | undefined;
    child.status.then((status) => exited = status);
    for (let i = 0; i < 200 && !exited; i++) {
      try {
        const res = await rt.fetch("/healthz");
        await res.body?.cancel();
        if (res.ok) return rt;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (exited) {
      rt.#client?.close();
      throw new Error(`runtime process exited during start-up (code ${exited.code}; its log is above)`);
    }
    child.kill("SIGKILL");
    await child.status;
    throw new Error("runtime process did not come up within 10 s");
  }

  #client?: Deno.HttpClient;

  /**
   * An HTTP request to the runtime over its unix socket (one kept-alive client per process); a body is
   * sent as `application/json` unless `init` names another type.
   */
  async fetch(path: string, init?: RequestInit): Promise<Response> {
    this.#client ??= Deno.createHttpClient({ proxy: { transport: "unix", path: this.socket } });
    const headers = new Headers(init?.headers);
    if (init?.body !== undefined && !headers.has("content-type")) {
      headers.set("content-type", "application/json");
    }
    const res = await fetch(`http://bpfd${path}`, { ...init, headers, client: this.#client });
    const body = await res.arrayBuffer();
    return new Response(body, { status: res.status, headers: res.headers });
  }

  /** Calls a function over the socket. */
  async call(name: string, input: unknown): Promise<{ status: number; body: Json }> {
    const res = await this.fetch(`/v1/functions/${name}`, { method: "POST", body: JSON.stringify(input) });
    return { status: res.status, body: await res.json() };
  }

  /** Sends a signal and waits for the process to end. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    this.#client?.close();
    this.#client = undefined;
    try {
      this.child.kill(signal);
    } catch { /* already gone */ }
    await this.child.status;
  }
}

/** A runtime process on `dir` with `config` (a --config file) and extra arguments. */
export async function startWithConfig(
  dir: string,
  config: Record<string, unknown>,
  args: string[] = [],
): Promise<RuntimeProcess> {
  await Deno.writeTextFile(`${dir}/runtime.json`, JSON.stringify(config));
  return await RuntimeProcess.start(dir, ["--config", `${dir}/runtime.json`, ...args]);
}

/** Stops `rt`, unmounts its bpffs and removes its directory. */
export async function cleanUp(rt: RuntimeProcess | undefined, dir: string): Promise<void> {
  if (rt) {
    for (
      const p of (await rt.call("list", {}).catch(() => ({ body: { programs: [] } }))).body.programs ?? []
    ) {
      await rt.call("unload", { programId: p.id }).catch(() => {});
    }
    await rt.stop();
  }
  await new Deno.Command("umount", { args: [`${dir}/fs`], stderr: "null" }).output();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
