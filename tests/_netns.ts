/**
 * Test hosts: a veth pair between two network namespaces the test makes, with addresses, and real
 * traffic between them. Disposing deletes both namespaces (and with them the veth), also on failure.
 *
 * @example
 * ```ts
 * await using net = await VethPair.create();
 * await net.ping(3); // from the peer namespace to the host side
 * ```
 * @module
 */

let counter = 0;

async function run(cmd: string, ...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(stdout);
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(stderr).trim()}`);
  return text;
}

/** A running ping; `result` resolves when it has sent all its packets. */
export interface Traffic {
  result: Promise<{ transmitted: number; received: number }>;
}

/** Two namespaces joined by a veth pair: `host` side (where programs attach) and `peer` side. */
export class VethPair {
  private constructor(
    /** Namespace names (under /run/netns), usable as `netns` in attach requests. */
    readonly hostNs: string,
    readonly peerNs: string,
    readonly hostIf: string,
    readonly peerIf: string,
    readonly hostAddr: string,
    readonly peerAddr: string,
  ) {}

  /** Creates the namespaces, the veth pair and addresses 10.213.<n>.1 (host) and .2 (peer). */
  static async create(): Promise<VethPair> {
    const n = (counter++ % 250) + 1;
    const tag = `${Deno.pid}-${n}`;
    const pair = new VethPair(
      `bpfdt-h-${tag}`,
      `bpfdt-p-${tag}`,
      "veth-h",
      "veth-p",
      `10.213.${n}.1`,
      `10.213.${n}.2`,
    );
    try {
      await run("ip", "netns", "add", pair.hostNs);
      await run("ip", "netns", "add", pair.peerNs);
      await run(
        "ip",
        "link",
        "add",
        pair.hostIf,
        "netns",
        pair.hostNs,
        "type",
        "veth",
        "peer",
        "name",
        pair.peerIf,
        "netns",
        pair.peerNs,
      );
      for (
        const [ns, dev, addr] of [[pair.hostNs, pair.hostIf, pair.hostAddr], [
          pair.peerNs,
          pair.peerIf,
          pair.peerAddr,
        ]]
      ) {
        await pair.exec(ns, "ip", "addr", "add", `${addr}/24`, "dev", dev);
        await pair.exec(ns, "ip", "link", "set", dev, "up");
        await pair.exec(ns, "ip", "link", "set", "lo", "up");
      }
    } catch (err) {
      await pair.destroy();
      throw err;
    }
    return pair;
  }

  /** Runs a command inside namespace `ns` (nsenter keeps /sys and bpffs visible, unlike `ip netns exec`). */
  exec(ns: string, cmd: string, ...args: string[]): Promise<string> {
    return run("nsenter", `--net=/run/netns/${ns}`, cmd, ...args);
  }

  /**
   * Loads a BPF object with `tc` itself — someone else's program, behind bpfd's back — as a direct-action
   * filter on the host side's ingress (adding the clsact qdisc); returns the program id tc reports.
   */
  async addForeignTcFilter(objectPath: string, priority: number): Promise<number> {
    await this.exec(this.hostNs, "tc", "qdisc", "add", "dev", this.hostIf, "clsact");
    const filter = ["filter", "add", "dev", this.hostIf, "ingress", "prio", String(priority), "bpf", "da"];
    await this.exec(this.hostNs, "tc", ...filter, "obj", objectPath, "sec", "tc");
    const shown = await this.exec(this.hostNs, "tc", "filter", "show", "dev", this.hostIf, "ingress");
    const id = Number(shown.match(new RegExp(`pref ${priority} bpf .* id (\\d+) `))?.[1]);
    if (!(id > 0)) throw new Error(`no program id in tc's answer:\n${shown}`);
    return id;
  }

  /** Pings the host side from the peer; returns how many replies came back. */
  async ping(count: number, intervalSeconds = 0.01): Promise<number> {
    return await this.startPing(count, intervalSeconds, 1).result.then((r) => r.received, () => 0);
  }

  /**
   * Starts `count` pings from the peer to the host side in the background, one every `intervalSeconds`
   * (root may go below 0.2 s), each waiting up to `waitSeconds` for its reply.
   */
  startPing(count: number, intervalSeconds: number, waitSeconds = 2): Traffic {
    const child = new Deno.Command("nsenter", {
      args: [
        `--net=/run/netns/${this.peerNs}`,
        "ping",
        "-q",
        "-c",
        String(count),
        "-i",
        String(intervalSeconds),
        "-W",
        String(waitSeconds),
        this.hostAddr,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const result = child.output().then(({ stdout }) => {
      const text = new TextDecoder().decode(stdout);
      const m = text.match(/(\d+) packets transmitted, (\d+) received/);
      if (!m) throw new Error(`ping printed no statistics: ${text}`);
      return { transmitted: Number(m[1]), received: Number(m[2]) };
    });
    return { result };
  }

  /** Deletes both namespaces (the veth pair goes with them). */
  async destroy(): Promise<void> {
    for (const ns of [this.hostNs, this.peerNs]) await run("ip", "netns", "del", ns).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }
}
