// A real OCI registry for tests: Debian's docker-registry on 127.0.0.1, optionally with basic auth
// (htpasswd), bearer-token auth (a small token server run here, signing ES256 JWTs the registry verifies),
// and TLS with a CA made for the test. stop() ends the processes this started and removes the temp dir.
// Needs tests/host/image/setup.sh (docker-registry, apache2-utils, openssl).
import { join } from "node:path";
import { newEcKeyArgs } from "../lib/pki.ts";

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  /** Issues a leaf certificate; returns [certPath, keyPath]. */
  issue(name: string, ext: string, subject?: string): Promise<[string, string]>;
}

export async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: string; cwd?: string } = {},
): Promise<string> {
  const p = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await p.output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A throwaway CA (ECDSA P-256) in `dir`. */
export async function makePki(dir: string, cn = "bpfd test CA"): Promise<Pki> {
  const caKey = join(dir, "ca.key");
  const caCert = join(dir, "ca.crt");
  await run("openssl", [
    "req",
    "-x509",
    ...newEcKeyArgs(caKey),
    "-out",
    caCert,
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]); // deno-fmt-ignore
  let serial = 1;
  return {
    dir,
    caCert,
    caKey,
    async issue(name, ext, subject = `/CN=${name}`) {
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const crt = join(dir, `${name}.crt`);
      const extFile = join(dir, `${name}.ext`);
      await Deno.writeTextFile(extFile, ext);
      await run("openssl", [
        "req",
        ...newEcKeyArgs(key),
        "-out",
        csr,
        "-subj",
        subject,
      ]); // deno-fmt-ignore
      await run("openssl", [
        "x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-set_serial", String(serial++),
        "-out", crt, "-days", "1", "-extfile", extFile,
      ]); // deno-fmt-ignore
      return [crt, key];
    },
  };
}

/** A server certificate for 127.0.0.1 and localhost from a fresh CA in `dir`: files and PEM text. */
export async function serverCert(
  dir: string,
  name: string,
): Promise<{ caFile: string; certFile: string; keyFile: string; cert: string; key: string }> {
  const pki = await makePki(dir, `bpfd test ${name} CA`);
  const [certFile, keyFile] = await pki.issue(
    name,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  return {
    caFile: pki.caCert,
    certFile,
    keyFile,
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  };
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function b64url(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export interface RegistryOptions {
  auth?: "none" | "htpasswd" | "token";
  tls?: boolean;
  /** Users for htpasswd/token auth; default { tester: "secret" }. */
  users?: Record<string, string>;
}

export interface TestRegistry {
  /** host:port to put in image references. */
  host: string;
  /** Base URL (http or https). */
  url: string;
  /** CA file trusted for its TLS certificate, when tls. */
  caFile?: string;
  dir: string;
  users: Record<string, string>;
  /** How many token requests the token server answered (token auth). */
  tokenRequests(): number;
  /** Path of a blob in the registry's storage (to corrupt it in tests). */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

/** Starts docker-registry on 127.0.0.1 and waits until it answers. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-registry-" });
  const users = opts.users ?? { tester: "secret" };
  const auth = opts.auth ?? "none";
  let proc: Deno.ChildProcess | undefined;
  let tokenServer: Deno.HttpServer | undefined;
  let tokens = 0;
  const stop = async () => {
    if (proc) {
      try {
        proc.kill("SIGTERM");
      } catch { /* already gone */ }
      await proc.status;
      proc = undefined;
    }
    if (tokenServer) {
      await tokenServer.shutdown();
      tokenServer = undefined;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const port = freePort();
    const host = `127.0.0.1:${port}`;
    let tlsYaml = "";
    let caFile: string | undefined;
    if (opts.tls) {
      const tls = await serverCert(dir, "registry");
      tlsYaml = `  tls:\n    certificate: ${tls.certFile}\n    key: ${tls.keyFile}\n`;
      caFile = tls.caFile;
    }
    let authYaml = "";
    if (auth === "htpasswd") {
      const lines = [];
      for (const [u, p] of Object.entries(users)) lines.push((await run("htpasswd", ["-Bbn", u, p])).trim());
      await Deno.writeTextFile(join(dir, "htpasswd"), lines.join("\n") + "\n");
      authYaml = `auth:\n  htpasswd:\n    realm: bpfd-test\n    path: ${join(dir, "htpasswd")}\n`;
    } else if (auth === "token") {
      const pki = await makePki(await Deno.makeTempDir({ dir, prefix: "token-" }), "bpfd test token signer");
      const keyPem = await Deno.readTextFile(pki.caKey);
      const certDer = (await Deno.readTextFile(pki.caCert)).replace(/-----[A-Z ]+-----|\s/g, "");
      const pkcs8 = await run("openssl", ["pkcs8", "-topk8", "-nocrypt", "-in", pki.caKey]);
      const der = Uint8Array.from(atob(pkcs8.replace(/-----[A-Z ]+-----|\s/g, "")), (c) => c.charCodeAt(0));
      void keyPem;
      const signKey = await crypto.subtle.importKey(
        "pkcs8",
        der,
        { name: "ECDSA", namedCurve: "P-256" },
        false,
        [
          "sign",
        ],
      );
      const tport = freePort();
      tokenServer = Deno.serve({ hostname: "127.0.0.1", port: tport, onListen() {} }, async (req) => {
        const u = new URL(req.url);
        const hdr = req.headers.get("authorization") ?? "";
        let user: string | undefined;
        if (hdr.startsWith("Basic ")) {
          const [name, ...rest] = atob(hdr.slice(6)).split(":");
          if (users[name] === rest.join(":")) user = name;
          else return new Response("bad credentials", { status: 401 });
        }
        tokens++;
        const access = [];
        for (const scope of u.searchParams.getAll("scope")) {
          const [type, name, actions] = scope.split(":");
          // Anonymous users may pull, not push; known users get what they ask for.
          const granted = actions.split(",").filter((a) => user || a === "pull");
          access.push({ type, name, actions: user ? granted : [] });
        }
        const now = Math.floor(Date.now() / 1000);
        const header = { alg: "ES256", typ: "JWT", x5c: [certDer] };
        const claims = {
          iss: "bpfd-test-token-issuer",
          sub: user ?? "",
          aud: u.searchParams.get("service"),
          exp: now + 300,
          nbf: now - 10,
          iat: now,
          jti: crypto.randomUUID(),
          access,
        };
        const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
        const sig = new Uint8Array(
          await crypto.subtle.sign(
            { name: "ECDSA", hash: "SHA-256" },
            signKey,
            new TextEncoder().encode(signingInput),
          ),
        );
        return Response.json({ token: `${signingInput}.${b64url(sig)}`, expires_in: 300 });
      });
      authYaml =
        `auth:\n  token:\n    realm: http://127.0.0.1:${tport}/token\n    service: bpfd-test-registry\n` +
        `    issuer: bpfd-test-token-issuer\n    rootcertbundle: ${pki.caCert}\n`;
    }
    const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
  delete:
    enabled: true
http:
  addr: ${host}
${tlsYaml}${authYaml}`;
    await Deno.writeTextFile(join(dir, "config.yml"), config);
    proc = new Deno.Command("docker-registry", {
      args: ["serve", join(dir, "config.yml")],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const errText: string[] = [];
    (async () => {
      for await (const c of proc!.stderr.pipeThrough(new TextDecoderStream())) errText.push(c);
    })().catch(() => {});
    const url = `${opts.tls ? "https" : "http"}://${host}`;
    const client = caFile ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(caFile)] }) : undefined;
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await fetch(`${url}/v2/`, { client } as RequestInit);
        await res.body?.cancel();
        if (res.status === 200 || res.status === 401) break;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${errText.join("")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    client?.close();
    return {
      host,
      url,
      caFile,
      dir,
      users,
      tokenRequests: () => tokens,
      blobFile: (digest: string) =>
        join(
          dir,
          "data/docker/registry/v2/blobs/sha256",
          digest.slice(7, 9),
          digest.slice(7),
          "data",
        ),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
