// The kubelet's grpc-go client sends the socket's path as :authority. Here a raw HTTP/2 call does the same:
// Deno's HTTP/2 server (grpc-js) answers it with GOAWAY; through the relay the call succeeds.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { relayUnix } from "../../../csi/authority_proxy.ts";

const enc = new TextEncoder();
const literal = (name: string, value: string) => {
  const n = enc.encode(name), v = enc.encode(value);
  return [0x00, n.length, ...n, v.length, ...v]; // HPACK literal, not indexed, lengths < 127
};
const frame = (type: number, flags: number, stream: number, payload: number[]) => {
  const len = payload.length;
  return new Uint8Array([len >> 16, (len >> 8) & 255, len & 255, type, flags, 0, 0, 0, stream, ...payload]);
};

/** The frame types the server sends back for one GetInfo call with `authority`, and the bytes of them all. */
async function rawGetInfo(socket: string, authority: string): Promise<{ types: number[]; text: string }> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(enc.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    await conn.write(frame(4, 0, 0, []));
    await conn.write(frame(1, 4, 1, [
      ...literal(":method", "POST"),
      ...literal(":scheme", "http"),
      ...literal(":path", "/pluginregistration.Registration/GetInfo"),
      ...literal(":authority", authority),
      ...literal("content-type", "application/grpc"),
      ...literal("te", "trailers"),
    ]));
    await conn.write(frame(0, 1, 1, [0, 0, 0, 0, 0]));
    let got: number[] = [];
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await Promise.race([
        conn.read(buf),
        new Promise<null>((r) => setTimeout(() => r(null), 1000)),
      ]);
      if (!n) break;
      got = [...got, ...buf.subarray(0, n)];
      if (
        got.includes(7) && got.length > 0 && new TextDecoder().decode(new Uint8Array(got)).includes("grpc-")
      ) break;
    }
    const types: number[] = [];
    for (let o = 0; o + 9 <= got.length; o += 9 + ((got[o] << 16) | (got[o + 1] << 8) | got[o + 2])) {
      types.push(got[o + 3]);
    }
    return { types, text: new TextDecoder().decode(new Uint8Array(got)) };
  } finally {
    conn.close();
  }
}

Deno.test("authority relay: a call with a socket path as :authority reaches grpc-js through the relay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfd-relay-" });
  const server = new grpc.Server();
  const def = loader.loadSync(new URL("../../../csi/protos/registration.proto", import.meta.url).pathname);
  // deno-lint-ignore no-explicit-any
  const pkg = grpc.loadPackageDefinition(def).pluginregistration as any;
  server.addService(pkg.Registration.service, {
    GetInfo: (_call: unknown, cb: (e: null, r: unknown) => void) =>
      cb(null, { type: "CSIPlugin", name: "x" }),
    NotifyRegistrationStatus: (_call: unknown, cb: (e: null, r: unknown) => void) => cb(null, {}),
  });
  const relay = await relayUnix(`${dir}/registry/relay.sock`, `${dir}/grpc.sock`);
  try {
    await new Promise((resolve, reject) =>
      server.bindAsync(
        `unix:${dir}/grpc.sock`,
        grpc.ServerCredentials.createInsecure(),
        (e, p) => e ? reject(e) : resolve(p),
      )
    );
    const path = `${dir}/registry/relay.sock`;
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const direct = await rawGetInfo(`${dir}/grpc.sock`, path);
    assert.ok(direct.types.includes(7), `GOAWAY without the relay: ${direct.types}`);
    assert.doesNotMatch(direct.text, /CSIPlugin/);
    const relayed = await rawGetInfo(path, path);
    assert.ok(!relayed.types.includes(7), `no GOAWAY: ${relayed.types}`);
    assert.match(relayed.text, /CSIPlugin/);
  } finally {
    relay.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
    await Deno.remove(dir, { recursive: true });
  }
});
