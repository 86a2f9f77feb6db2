/**
 * `bpfd image build|push|pull|sign`: package .o files as a bpfman-format image, push it to a registry,
 * pull one into the cache (with progress), and attach a key-based cosign signature. No docker or podman.
 *
 * @example
 * ```ts
 * await runImageCli(["pull", "quay.io/bpfd-bytecode/xdp_pass:latest", "--policy", "Always"]);
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { basename } from "node:path";
import { ImageError } from "../image/errors.ts";
import { buildImage } from "../image/format.ts";
import { readLayout, writeLayout } from "../image/layout.ts";
import { attachSignature, pushImage, signPayload, simpleSigningPayload } from "../image/push.ts";
import { formatReference, parseReference } from "../image/reference.ts";
import type { ImageSource, PullProgress } from "../model/image.ts";
import { ImageStore } from "../image/store.ts";

const USAGE = `usage:
  bpfd image build -o DIR[:TAG] --program NAME=TYPE [--program ...] [--map NAME=TYPE ...] [--legacy-labels] FILE.o...
      write a bpfman-format OCI image layout to DIR (tag default "latest")
  bpfd image push DIR[:TAG] REFERENCE [registry options]
      push an image from an OCI layout to a registry
  bpfd image pull REFERENCE [--policy Always|IfNotPresent|Never] [--cache DIR] [--config FILE] [--json]
                  [registry options]
      pull into the cache, verify (digests, signature policy) and print the programs and the object path
  bpfd image sign REFERENCE --key KEY.pem [registry options]
      sign the image's digest with an ECDSA P-256 key, cosign's format (tag sha256-<hex>.sig)
registry options:
  --insecure HOST[:PORT]   use plain HTTP for this registry (repeatable)
  --ca FILE                trust this CA certificate (PEM) for registry TLS (repeatable)
  --username U --password P | --authfile docker-config.json
  --config FILE            an image store configuration (JSON: cacheDir, signature policy, allow, ...)`;

const registryOptions = {
  insecure: { type: "string", multiple: true },
  ca: { type: "string", multiple: true },
  username: { type: "string" },
  password: { type: "string" },
  authfile: { type: "string" },
  config: { type: "string" },
  cache: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function pairs(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list ?? []) {
    const i = p.indexOf("=");
    if (i <= 0 || i === p.length - 1) {
      throw new ImageError("bad_image", `${flag} ${p}: expected NAME=TYPE`, { field: flag });
    }
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

async function storeFrom(values: {
  insecure?: string[];
  ca?: string[];
  authfile?: string;
  config?: string;
  cache?: string;
}): Promise<ImageStore> {
  let config: Record<string, unknown> = {};
  if (values.config) {
    try {
      config = JSON.parse(await Deno.readTextFile(values.config));
    } catch (e) {
      throw new ImageError("bad_config", `--config ${values.config}: ${(e as Error).message}`, {
        field: "config",
      });
    }
  }
  if (values.cache) config.cacheDir = values.cache;
  if (values.insecure) {
    config.insecureRegistries = [...(config.insecureRegistries as string[] ?? []), ...values.insecure];
  }
  if (values.ca) config.caFiles = [...(config.caFiles as string[] ?? []), ...values.ca];
  if (values.authfile) config.authFile = values.authfile;
  return new ImageStore(config);
}

function authOf(values: { username?: string; password?: string }): ImageSource["auth"] {
  if (values.username === undefined) return undefined;
  return { username: values.username, password: values.password ?? "" };
}

function splitLayoutArg(arg: string): [string, string | undefined] {
  const i = arg.lastIndexOf(":");
  if (i > 0 && !arg.slice(i + 1).includes("/")) return [arg.slice(0, i), arg.slice(i + 1)];
  return [arg, undefined];
}

function human(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1 << 20
    ? `${(n / 1024).toFixed(1)} KiB`
    : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function progressPrinter(): (p: PullProgress) => void {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const out = (s: string) => tty ? Deno.stderr.writeSync(enc.encode(s)) : console.error(s.replace(/\n$/, ""));
  let lastBlob = "";
  return (p) => {
    switch (p.phase) {
      case "resolve":
        out(`resolving ${p.url}\n`);
        break;
      case "manifest":
        out(`manifest ${p.digest}\n`);
        break;
      case "cached":
        out(`cached   ${p.digest}\n`);
        break;
      case "blob": {
        const line = `layer    ${p.digest.slice(0, 19)}… ${human(p.done)}${
          p.total ? ` / ${human(p.total)}` : ""
        }`;
        if (tty) out(`\r${line}`);
        else if (p.done === p.total && lastBlob !== p.digest) console.error(line);
        if (tty && p.done === p.total) out("\n");
        lastBlob = p.digest;
        break;
      }
      case "verify":
        out(`verify   ${p.what}\n`);
        break;
      case "done":
        out(`done     ${p.digest}\n`);
        break;
    }
  };
}

async function build(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      program: { type: "string", multiple: true },
      map: { type: "string", multiple: true },
      "legacy-labels": { type: "boolean" },
      arch: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || !values.output || positionals.length === 0) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const [dir, tag = "latest"] = splitLayoutArg(values.output);
  const objects = [];
  for (const f of positionals) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(f);
    } catch (e) {
      throw new ImageError("bad_image", `${f}: ${(e as Error).message}`, { field: "objects" });
    }
    if (
      bytes.length < 4 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46
    ) {
      throw new ImageError("bad_image", `${f}: not an ELF object file`, { field: "objects" });
    }
    objects.push({ name: basename(f), bytes });
  }
  const image = await buildImage({
    objects,
    programs: pairs(values.program, "--program"),
    maps: pairs(values.map, "--map"),
    legacyLabels: values["legacy-labels"],
    architecture: values.arch,
  });
  await writeLayout(dir, image, tag);
  console.log(`${dir}:${tag} ${image.manifestDigest}`);
  return 0;
}

async function push(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: registryOptions });
  if (values.help || positionals.length !== 2) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const [dir, tag] = splitLayoutArg(positionals[0]);
  const image = await readLayout(dir, tag);
  const ref = parseReference(positionals[1]);
  const store = await storeFrom(values);
  try {
    const client = await store.client(ref, { url: positionals[1], auth: authOf(values) });
    const digest = await pushImage(client, ref, image, (b) => {
      console.error(`${b.state === "exists" ? "exists  " : "uploaded"} ${b.digest} ${human(b.size)}`);
    });
    console.log(`${formatReference({ ...ref, digest: undefined })}@${digest}`);
  } finally {
    store.close();
  }
  return 0;
}

async function pull(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...registryOptions, policy: { type: "string" }, json: { type: "boolean" } },
  });
  if (values.help || positionals.length !== 1) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const store = await storeFrom(values);
  try {
    const pulled = await store.pull({
      url: positionals[0],
      pullPolicy: (values.policy ?? "IfNotPresent") as "IfNotPresent",
      auth: authOf(values),
    }, { onProgress: values.json ? undefined : progressPrinter() });
    if (values.json) console.log(JSON.stringify(pulled, null, 2));
    else {
      console.log(`image     ${pulled.url}@${pulled.digest}`);
      console.log(`object    ${pulled.objectPath}`);
      for (const [n, t] of Object.entries(pulled.programs)) console.log(`program   ${n} (${t})`);
      for (const [n, t] of Object.entries(pulled.maps)) console.log(`map       ${n} (${t})`);
      const s = pulled.signature;
      console.log(`signature ${s?.verified ? `verified, by ${s.by}` : `not verified (${s?.note ?? "?"})`}`);
    }
  } finally {
    store.close();
  }
  return 0;
}

async function sign(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...registryOptions, key: { type: "string" } },
  });
  if (values.help || positionals.length !== 1 || !values.key) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const ref = parseReference(positionals[0]);
  const store = await storeFrom(values);
  try {
    const client = await store.client(ref, { url: positionals[0], auth: authOf(values) });
    const digest = ref.digest ?? (await client.getManifest(ref.repository, ref.tag!)).digest;
    const payload = simpleSigningPayload(`${ref.registry}/${ref.repository}`, digest);
    const sig = signPayload(await Deno.readTextFile(values.key), payload);
    await attachSignature(client, ref.repository, digest, payload, sig);
    console.log(`signed ${ref.registry}/${ref.repository}@${digest}`);
  } finally {
    store.close();
  }
  return 0;
}

/** The messages of an error and its causes, on one line. */
function causeOf(err: unknown): string {
  const parts: string[] = [];
  for (let e = err; e instanceof Error && parts.length < 4; e = e.cause) parts.push(e.message);
  return parts.join(": ").replace(/\s+/g, " ").slice(0, 400);
}

/** Entry point for `bpfd image ...`; returns the exit status. */
export async function runImageCli(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  try {
    switch (cmd) {
      case "build":
        return await build(rest);
      case "push":
        return await push(rest);
      case "pull":
        return await pull(rest);
      case "sign":
        return await sign(rest);
      case undefined:
      case "help":
      case "-h":
      case "--help":
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        console.error(`bpfd image: unknown subcommand ${JSON.stringify(cmd)}\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof ImageError) {
      // Here the caller is the operator on their own network: say what the connection failure was.
      const cause = e.code === "registry_unreachable" ? causeOf(e.cause) : "";
      console.error(`bpfd image ${cmd}: ${e.message}${cause ? ` (${cause})` : ""} [${e.code}]`);
      return 1;
    }
    if (e instanceof TypeError && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`bpfd image ${cmd}: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(await runImageCli(Deno.args));
