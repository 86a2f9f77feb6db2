/**
 * The VM tier's self-test, run only inside the guest (tests/vm/run.sh passes it explicitly; its name keeps
 * the host tier's `deno test tests/` away from it): the guest is Debian's kernel with the environment the
 * tests expect, network namespaces pass traffic over veth, and the kernel takes what the host refuses.
 * @module
 */
import assert from "node:assert/strict";
import { CAPABILITIES, detectCaps } from "../_caps.ts";

if (Deno.env.get("BPFD_VM") !== "1") {
  throw new Error("tests/vm/guest_smoke.ts runs inside the VM tier only: bash tests/vm/run.sh");
}

async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${out.code}: ${text.decode(out.stderr)}${text.decode(out.stdout)}`,
    );
  }
  return text.decode(out.stdout);
}

Deno.test("guest runs Debian's kernel with bpffs, tracefs and kernel BTF", async () => {
  assert.equal(Deno.osRelease(), Deno.env.get("BPFD_VM_KERNEL"));
  const mounts = (await Deno.readTextFile("/proc/mounts")).split("\n").map((l) => l.split(" "));
  const at = (dir: string) => mounts.find((m) => m[1] === dir)?.[2];
  assert.equal(at("/sys/fs/bpf"), "bpf");
  assert.equal(at("/sys/kernel/tracing"), "tracefs");
  assert.ok((await Deno.stat("/sys/kernel/btf/vmlinux")).size > 1_000_000, "vmlinux BTF present");
  assert.ok((await Deno.stat("/sys/kernel/tracing/available_filter_functions")).isFile);
  const modules = await Deno.readTextFile("/proc/modules");
  for (const m of ["veth", "sch_ingress", "cls_bpf"]) assert.match(modules, new RegExp(`^${m} `, "m"));
});

Deno.test("two network namespaces ping each other over a veth pair", async () => {
  const a = `bpfd-smoke-a-${Deno.pid}`, b = `bpfd-smoke-b-${Deno.pid}`;
  try {
    await run("ip", "netns", "add", a);
    await run("ip", "netns", "add", b);
    await run("ip", "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b);
    await run("ip", "-n", a, "addr", "add", "192.0.2.1/24", "dev", "veth0");
    await run("ip", "-n", b, "addr", "add", "192.0.2.2/24", "dev", "veth1");
    await run("ip", "-n", a, "link", "set", "veth0", "up");
    await run("ip", "-n", b, "link", "set", "veth1", "up");
    const out = await run(
      "nsenter",
      `--net=/run/netns/${a}`,
      "ping",
      "-c",
      "2",
      "-i",
      "0.2",
      "-W",
      "5",
      "192.0.2.2",
    );
    assert.match(out, /2 received/);
  } finally {
    for (const ns of [a, b]) await run("ip", "netns", "del", ns).catch(() => {});
  }
});

Deno.test("bpftool loads an fentry/fexit pair (the host kernel refuses it)", async () => {
  const object = Deno.env.get("BPFD_VM_SMOKE_OBJECT");
  assert.ok(object, "run.sh passes the smoke object's path");
  const pins = `/sys/fs/bpf/bpfd-smoke-${Deno.pid}`;
  try {
    await run("bpftool", "prog", "loadall", object, pins);
    const names = [...Deno.readDirSync(pins)].map((e) => e.name).sort();
    assert.deepEqual(names, ["smoke_fentry", "smoke_fexit"]);
    for (const name of names) {
      const info = JSON.parse(await run("bpftool", "-j", "prog", "show", "pinned", `${pins}/${name}`));
      assert.equal(info.type, "tracing");
    }
  } finally {
    await Deno.remove(pins, { recursive: true }).catch(() => {});
  }
});

Deno.test("the VM kernel has every capability the host tier defers to it", () => {
  const { kernel, tier, caps } = detectCaps();
  assert.equal(tier, "vm");
  for (const c of CAPABILITIES) assert.ok(caps[c].available, `${c} on ${kernel}: ${caps[c].why}`);
});
