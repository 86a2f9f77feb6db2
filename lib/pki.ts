/**
 * The X.509 work bpfd does, through the `openssl` command (Debian's, which `ca-certificates` brings into
 * the image): a CA, a key with a certificate signing request, a serving certificate signed by the CA for
 * chosen subjectAltNames, and the facts of a certificate. Used by deploy (the node CA), the node runtime
 * (its own key and request) and the controller (which signs node runtimes' requests).
 *
 * @example
 * ```ts
 * const ca = await issueCa("bpfd-node-ca", 3650);
 * const { key, csr } = await keyAndRequest("system:bpfd:node:node-a");
 * const cert = await signServing(csr, ca, { ips: ["10.0.0.5"], dns: ["node-a"] }, 365);
 * ```
 * @module
 */
import { run as runCommand } from "./command.ts";

/** Runs `openssl` with `args` (and `stdin`); its stdout, or an error with its stderr. */
export async function openssl(args: string[], stdin?: string): Promise<string> {
  return (await run(args, stdin)).stdout;
}

async function run(args: string[], stdin?: string): Promise<{ stdout: string; stderr: string }> {
  const r = await runCommand("openssl", args, stdin);
  if (r.code !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.trim()}`);
  return r;
}

/** `openssl req` arguments for a new unencrypted ECDSA P-256 key, written to `keyout`. */
export function newEcKeyArgs(keyout: string): string[] {
  return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyout];
}

/** A CA: its certificate and key (PEM). */
export interface Ca {
  cert: string;
  key: string;
}

async function inTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-pki-" });
  try {
    return await work(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** A new self-signed CA named `cn`, valid `days`. */
export function issueCa(cn: string, days: number): Promise<Ca> {
  return inTempDir(async (dir) => {
    await openssl(["genrsa", "-out", `${dir}/ca.key`, "2048"]);
    const cert = await openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      `${dir}/ca.key`,
      "-subj",
      `/CN=${cn}`,
      "-days",
      String(days),
    ]);
    return { cert, key: await Deno.readTextFile(`${dir}/ca.key`) };
  });
}

/** A new ECDSA P-256 key and a certificate signing request for it with common name `cn` (PEM). */
export function keyAndRequest(cn: string): Promise<{ key: string; csr: string }> {
  return inTempDir(async (dir) => {
    await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${dir}/ec.key`]);
    const key = await openssl(["pkcs8", "-topk8", "-nocrypt", "-in", `${dir}/ec.key`]);
    const csr = await openssl(["req", "-new", "-key", `${dir}/ec.key`, "-subj", `/CN=${cn}`]);
    return { key, csr };
  });
}

/** The common name of a request whose self-signature checks out; throws otherwise. */
export async function requestSubject(csr: string): Promise<string> {
  const { stdout: out, stderr } = await run(
    ["req", "-verify", "-noout", "-subject", "-nameopt", "RFC2253"],
    csr,
  );
  // OpenSSL 3.0 reports a bad self-signature on stderr and still exits 0.
  if (!/verify OK/.test(stderr)) throw new Error(`the request's self-signature does not verify`);
  const cn = out.match(/subject=.*?CN=([^,\n]+)/)?.[1];
  if (!cn) throw new Error("the request has no common name");
  return cn;
}

/** A serving certificate for the key of `csr`, signed by `ca`, for exactly `ips` and `dns`, valid `days`. */
export function signServing(
  csr: string,
  ca: Ca,
  sans: { ips: string[]; dns: string[] },
  days: number,
): Promise<string> {
  return inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ca.crt`, ca.cert);
    await Deno.writeTextFile(`${dir}/ca.key`, ca.key, { mode: 0o600 });
    const alt = [...sans.ips.map((i) => `IP:${i}`), ...sans.dns.map((d) => `DNS:${d}`)].join(",");
    await Deno.writeTextFile(
      `${dir}/ext`,
      `subjectAltName=${alt}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
    );
    const serial = Array.from(
      crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0"),
    )
      .join("");
    return await openssl(
      [
        "x509",
        "-req",
        "-CA",
        `${dir}/ca.crt`,
        "-CAkey",
        `${dir}/ca.key`,
        "-set_serial",
        `0x${serial.replace(/^[89a-f]/, "1")}`,
        "-days",
        String(days),
        "-extfile",
        `${dir}/ext`,
      ],
      csr,
    );
  });
}

/** The subjectAltNames of a PEM certificate and its expiry. */
export async function certificateFacts(pem: string): Promise<{ sans: Set<string>; notAfter: number }> {
  const text = await openssl(["x509", "-noout", "-enddate", "-ext", "subjectAltName"], pem);
  const sans = new Set<string>();
  for (const m of text.matchAll(/(DNS|IP Address):([^,\s]+)/g)) sans.add(m[2]);
  const end = text.match(/notAfter=(.+)/)?.[1];
  return { sans, notAfter: end ? Date.parse(end) : 0 };
}
