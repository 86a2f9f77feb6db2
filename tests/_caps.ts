/**
 * Kernel capabilities for tests. Some program types need something not every kernel has: this host's
 * kernel has no kprobes and refuses every trampoline program (fentry, fexit, freplace) before
 * verification. This module finds out at run time what the running kernel can do, and {@link capTest}
 * declares a test that needs a capability and the program types it proves:
 *
 * - on a kernel that has what the test needs, it runs;
 * - on the host without it, it is registered ignored, its name saying why and that the VM tier runs it
 *   (such tests must live under tests/vm/, which tests/vm/run.sh runs inside Debian's own kernel);
 * - in the VM tier (`BPFD_VM=1`) without it, it fails: the VM exists to run it.
 *
 * Passing tests name the program types they prove (`[proves kprobe, kretprobe]`); run as a program, this
 * module reads the tiers' JUnit reports and prints per tier which program types were proven there.
 *
 * @example
 * ```ts
 * import { capTest } from "../_caps.ts";
 * capTest({ name: "kprobe counts do_unlinkat", needs: ["kprobes"], proves: ["kprobe"] }, async () => {
 *   // ...
 * });
 * ```
 * ```sh
 * deno run -A tests/_caps.ts /tmp/reports/host.xml /tmp/reports/vm.xml
 * ```
 * @module
 */
import { BpfProgType } from "../ffi/abi.ts";
import { closeFd } from "../ffi/libc.ts";
import { freplaceAttach } from "../ffi/bpf.ts";
import { hasErrno, LibbpfError } from "../ffi/errno.ts";
import { btfFuncId } from "../ffi/libbpf.ts";
import { BpfObject } from "../ffi/object.ts";

/** What a test may need from the kernel. */
export type Capability = "kprobes" | "fentry" | "fexit" | "freplace";
export const CAPABILITIES: readonly Capability[] = ["kprobes", "fentry", "fexit", "freplace"];

/** Where tests run: the host's own kernel, or Debian's kernel inside qemu (tests/vm/run.sh sets BPFD_VM=1). */
export type Tier = "host" | "vm";
export const tier: Tier = Deno.env.get("BPFD_VM") === "1" ? "vm" : "host";

/** Whether the running kernel has a capability, and if not, why. */
export interface CapabilityState {
  available: boolean;
  why: string;
}

/** The running kernel and what it can do. */
export interface KernelCaps {
  kernel: string;
  tier: Tier;
  caps: Record<Capability, CapabilityState>;
}

/** The object whose fentry/fexit programs the probe loads, and the kernel function they trace. */
export const PROBE_OBJECT = new URL("../bytecode/build/probe_counters.bpf.o", import.meta.url).pathname;
export const PROBE_FUNCTION = "do_unlinkat";

const yes = (why: string): CapabilityState => ({ available: true, why });
const no = (why: string): CapabilityState => ({ available: false, why });

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function probeKprobes(): CapabilityState {
  // perf_event_open's dynamic kprobe PMU is what kprobe links use; it exists iff CONFIG_KPROBES (+events).
  if (exists("/sys/bus/event_source/devices/kprobe/type")) return yes("kprobe PMU present");
  return no("not compiled into this kernel (no /sys/bus/event_source/devices/kprobe: CONFIG_KPROBES unset)");
}

/** Loads probe_counters' fentry or fexit program on do_unlinkat: the kernel either takes it or says why not. */
function probeTrampoline(kind: "fentry" | "fexit"): CapabilityState {
  if (!exists(PROBE_OBJECT)) return no(`${PROBE_OBJECT} is missing (run \`deno task bytecode\`)`);
  const wanted = `${kind}_counter`;
  let obj: BpfObject | undefined;
  try {
    obj = BpfObject.open(PROBE_OBJECT);
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === wanted);
    obj.setAttachTarget(wanted, PROBE_FUNCTION);
    obj.load();
    return yes(`${kind} program on ${PROBE_FUNCTION} loaded`);
  } catch (err) {
    if (!(err instanceof LibbpfError)) throw err;
    const refused = hasErrno(err, "EPERM") && !err.verifierLog;
    return no(
      refused
        ? `this kernel refuses ${kind} programs (EPERM before verification)`
        : `loading an ${kind} program failed: ${err.message}`,
    );
  } finally {
    obj?.close();
  }
}

/**
 * freplace: loads probe_counters' `freplace_target` as an XDP program, then again as an extension
 * (BPF_PROG_TYPE_EXT) of that program's own function, and attaches it — what bpfd's dispatchers do.
 */
function probeFreplace(): CapabilityState {
  if (!exists(PROBE_OBJECT)) return no(`${PROBE_OBJECT} is missing (run \`deno task bytecode\`)`);
  const name = "freplace_target";
  let target: BpfObject | undefined, ext: BpfObject | undefined;
  let link = -1;
  try {
    target = BpfObject.open(PROBE_OBJECT);
    for (const p of target.programs()) target.setAutoload(p.name, p.name === name);
    target.load();
    const targetFd = target.programFd(name);
    ext = BpfObject.open(PROBE_OBJECT);
    for (const p of ext.programs()) ext.setAutoload(p.name, p.name === name);
    ext.setProgramType(name, BpfProgType.EXT, 0); // SEC("xdp") set BPF_XDP; extensions take none
    ext.setAttachProgram(name, targetFd, name);
    ext.load();
    link = freplaceAttach("attach freplace probe", ext.programFd(name), targetFd, btfFuncId(targetFd, name));
    return yes("an extension program loaded and attached to an XDP program's function");
  } catch (err) {
    if (!(err instanceof LibbpfError)) throw err;
    const refused = hasErrno(err, "EPERM") && !err.verifierLog;
    return no(
      refused
        ? "this kernel refuses extension (freplace) programs (EPERM before verification)"
        : `loading or attaching an extension (freplace) program failed: ${err.message}`,
    );
  } finally {
    if (link >= 0) closeFd(link);
    ext?.close();
    target?.close();
  }
}

/** Finds out what the running kernel can do (a few milliseconds; run once per test file). */
export function detectCaps(): KernelCaps {
  const kernel = Deno.osRelease();
  if (Deno.uid() !== 0) {
    const notRoot = no("tests run as root, this process is not");
    return { kernel, tier, caps: { kprobes: notRoot, fentry: notRoot, fexit: notRoot, freplace: notRoot } };
  }
  return {
    kernel,
    tier,
    caps: {
      kprobes: probeKprobes(),
      fentry: probeTrampoline("fentry"),
      fexit: probeTrampoline("fexit"),
      freplace: probeFreplace(),
    },
  };
}

/** Where {@link kernelCaps} keeps its answer for the rest of this boot (each test file is its own process). */
function cachePath(): string | undefined {
  try {
    const bootId = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
    return `${Deno.env.get("TMPDIR") ?? "/tmp"}/bpfd-test-caps-${bootId}-${Deno.uid()}.json`;
  } catch {
    return undefined;
  }
}

/** Changes when the probe object is rebuilt, so that a cached answer does not outlive it. */
function probeStamp(): string {
  try {
    const st = Deno.statSync(PROBE_OBJECT);
    return `${st.size}-${st.mtime?.getTime()}`;
  } catch {
    return "missing";
  }
}

async function cachedCaps(): Promise<KernelCaps> {
  const path = cachePath();
  if (path) {
    try {
      const cached: KernelCaps & { probe?: string } = JSON.parse(await Deno.readTextFile(path));
      if (cached.kernel === Deno.osRelease() && cached.tier === tier && cached.probe === probeStamp()) {
        return cached;
      }
    } catch { /* none yet */ }
  }
  const caps = detectCaps();
  // A result that only says the probe object is missing is not worth keeping.
  if (path && exists(PROBE_OBJECT)) {
    const tmp = `${path}.${Deno.pid}`;
    await Deno.writeTextFile(tmp, JSON.stringify({ ...caps, probe: probeStamp() }));
    await Deno.rename(tmp, path);
  }
  return caps;
}

let detected: Promise<KernelCaps> | undefined;
/** {@link detectCaps}, once per boot: kept in a temporary file named after the boot id. */
export function kernelCaps(): Promise<KernelCaps> {
  return detected ??= cachedCaps();
}

// Detection runs while the test module loads, so that capTest can decide synchronously.
const current: KernelCaps | undefined = import.meta.main ? undefined : await kernelCaps();

/** A test that needs kernel capabilities and/or proves program types. */
export interface CapTestDefinition extends Omit<Deno.TestDefinition, "fn" | "name"> {
  name: string;
  /** Capabilities the test needs; on the host without them it is ignored (and must live in tests/vm/). */
  needs?: Capability[];
  /** Program types (bpfd's `type` names) that the test, when it passes, proves to work on this tier. */
  proves?: string[];
}

const KERNEL_TESTS_DIR = new URL("./vm/", import.meta.url).href;

/** The file that called capTest, from the call stack. */
function callerFile(): string | undefined {
  const self = import.meta.url;
  for (const line of (new Error().stack ?? "").split("\n").slice(1)) {
    const m = line.match(/(file:\/\/[^\s)]+?):\d+:\d+/);
    if (m && m[1] !== self) return m[1];
  }
  return undefined;
}

/** The name a capability test is registered under, with its proof tag and, when ignored, the reason. */
export function capTestName(
  def: Pick<CapTestDefinition, "name" | "needs" | "proves">,
  missing: string[],
): string {
  let name = def.name;
  if (def.proves?.length) name += ` [proves ${def.proves.join(", ")}]`;
  if (missing.length) name += ` (not run here: ${missing.join("; ")}; runs in the VM tier)`;
  return name;
}

/** Registers a Deno test that needs kernel capabilities; see the module documentation. */
export function capTest(def: CapTestDefinition, fn: (t: Deno.TestContext) => void | Promise<void>): void {
  if (!current) throw new Error("capTest is for test files, not for running _caps.ts as a program");
  const { needs = [], proves, ...rest } = def;
  if (needs.length) {
    const file = callerFile();
    if (!file?.startsWith(KERNEL_TESTS_DIR)) {
      throw new Error(
        `capTest "${def.name}" needs ${needs.join(", ")}: tests that need kernel capabilities live under ` +
          `tests/vm/, which the VM tier runs (it is in ${file ?? "an unknown file"})`,
      );
    }
  }
  const lacking = needs.filter((c) => !current.caps[c].available);
  const missing = lacking.map((c) => `needs ${c}: ${current.caps[c].why}`);
  if (current.tier === "vm" && lacking.length) {
    Deno.test({
      ...rest,
      name: capTestName({ name: def.name, proves }, []),
      fn() {
        throw new Error(
          `the VM tier's kernel (${current.kernel}) lacks what this test needs: ${missing.join("; ")}`,
        );
      },
    });
    return;
  }
  Deno.test({
    ...rest,
    name: capTestName({ name: def.name, proves }, current.tier === "host" ? missing : []),
    ignore: rest.ignore || lacking.length > 0,
    fn,
  });
}

// ---- the per-tier proof report, from JUnit files ----------------------------------------------------

/** One tier's result: the program types with at least one passing test that proves them. */
export interface TierProof {
  tier: string;
  kernel: string;
  proven: Set<string>;
}

const unescapeXml = (s: string) =>
  s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");

/** Reads one JUnit report (deno test's format; tests/vm/run.sh names the VM's `vm: linux <release>`). */
export function tierProof(xml: string): TierProof & { declared: Set<string> } {
  const suites = xml.match(/<testsuites\b[^>]*\bname="([^"]*)"/)?.[1] ?? "";
  const vm = unescapeXml(suites).match(/^vm: linux (\S+)/);
  const result = {
    tier: vm ? "vm" : "host",
    kernel: vm ? vm[1] : Deno.osRelease(),
    proven: new Set<string>(),
    declared: new Set<string>(),
  };
  for (const m of xml.matchAll(/<testcase\b[^>]*?\bname="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const tag = unescapeXml(m[1]).match(/\[proves ([^\]]+)\]/);
    if (!tag) continue;
    const types = tag[1].split(",").map((t) => t.trim()).filter(Boolean);
    types.forEach((t) => result.declared.add(t));
    if (!/<(failure|error|skipped)\b/.test(m[3] ?? "")) types.forEach((t) => result.proven.add(t));
  }
  return result;
}

/** The lines printed at the end of a test run: per tier, the program types proven there. */
export function proofLines(reports: string[]): string[] {
  // A tier whose tests prove no program type (the cluster tier) has no line.
  const tiers = reports.map(tierProof).filter((t) => t.declared.size > 0);
  const lines = tiers.map((t) =>
    `proven on ${t.tier} (linux ${t.kernel}): ${[...t.proven].sort().join(", ") || "(no program type)"}`
  );
  const declared = new Set(tiers.flatMap((t) => [...t.declared]));
  const unproven = [...declared].filter((d) => !tiers.some((t) => t.proven.has(d))).sort();
  if (unproven.length) lines.push(`not proven on any tier: ${unproven.join(", ")}`);
  return lines;
}

if (import.meta.main) {
  const reports: string[] = [];
  for (const path of Deno.args) {
    try {
      reports.push(await Deno.readTextFile(path));
    } catch {
      console.log(`proven: no report at ${path}`);
    }
  }
  for (const line of proofLines(reports)) console.log(line);
}
