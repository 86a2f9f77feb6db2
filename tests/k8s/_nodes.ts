/**
 * Test "nodes" for the controller tests: each node is a network namespace with an `eth0` (one end of a
 * veth pair) at 10.215.<n>.2/24; the other end stays in the root namespace at 10.215.<n>.1/24, so the
 * controller reaches a node runtime listening in the namespace the way it reaches a real node, and pings
 * from the root namespace are real traffic on the node's eth0. `destroy()` deletes the namespace (the
 * veth goes with it), also after a failure.
 *
 * @module
 */

async function run(cmd: string, ...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" })
    .output();
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(stderr).trim()}`);
  return new TextDecoder().decode(stdout);
}

let serial = 0;

/** One test node's network: namespace, eth0 inside, the host end outside. */
export class NodeNet {
  private constructor(
    readonly index: number,
    /** Namespace name under /run/netns. */
    readonly ns: string,
    /** The veth end in the root namespace. */
    readonly hostIf: string,
    readonly hostAddr: string,
    /** The node's address (on eth0 in the namespace). */
    readonly addr: string,
  ) {}

  /** Creates node number `index` (1..250; unique per test process). */
  static async create(index?: number): Promise<NodeNet> {
    const n = index ?? (serial++ % 250) + 1;
    const tag = `${Deno.pid % 100000}-${n}`;
    const net = new NodeNet(
      n,
      `bpfdk-${tag}`,
      `bk${Deno.pid % 10000}n${n}`,
      `10.215.${n}.1`,
      `10.215.${n}.2`,
    );
    try {
      await run("ip", "netns", "add", net.ns);
      await run("ip", "link", "add", net.hostIf, "type", "veth", "peer", "name", "eth0", "netns", net.ns);
      await run("ip", "addr", "add", `${net.hostAddr}/24`, "dev", net.hostIf);
      await run("ip", "link", "set", net.hostIf, "up");
      await net.exec("ip", "addr", "add", `${net.addr}/24`, "dev", "eth0");
      await net.exec("ip", "link", "set", "eth0", "up");
      await net.exec("ip", "link", "set", "lo", "up");
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  /** Runs a command in the node's namespace (nsenter keeps /sys and bpffs, unlike `ip netns exec`). */
  exec(cmd: string, ...args: string[]): Promise<string> {
    return run("nsenter", `--net=/run/netns/${this.ns}`, cmd, ...args);
  }

  /** Argument prefix that runs a command in the namespace. */
  get nsenter(): string[] {
    return ["nsenter", `--net=/run/netns/${this.ns}`, "--"];
  }

  /** Pings the node's eth0 from the root namespace; returns the replies. */
  async pingNode(count: number): Promise<number> {
    return await ping([], this.addr, count);
  }

  /** Pings the host end from inside the node; returns the replies. */
  async pingHost(count: number): Promise<number> {
    return await ping(this.nsenter, this.hostAddr, count);
  }

  async destroy(): Promise<void> {
    await run("ip", "netns", "del", this.ns).catch(() => {});
    await run("ip", "link", "del", this.hostIf).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }
}

async function ping(prefix: string[], addr: string, count: number): Promise<number> {
  const args = [...prefix, "ping", "-q", "-n", "-c", String(count), "-i", "0.01", "-W", "1", addr];
  const { stdout } = await new Deno.Command(args[0], { args: args.slice(1), stdout: "piped", stderr: "null" })
    .output();
  const m = new TextDecoder().decode(stdout).match(/(\d+) received/);
  return m ? Number(m[1]) : 0;
}
