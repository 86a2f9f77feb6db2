// cosign signatures verified offline against a real registry on loopback: key-based (ECDSA P-256, with and
// without a Rekor entry) and keyless (a test "Fulcio" certificate + a test "Rekor" SET checked against a
// trusted_root.json). Each refusal names its reason, and a refused pull leaves nothing in the cache.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ANN_BUNDLE, keyFingerprint } from "../../../image/cosign.ts";
import { simpleSigningPayload } from "../../../image/push.ts";
import { startRegistry } from "../../_registry.ts";
import { newKeyPair, signWith, TestSigstore } from "./_sigstore.ts";
import { assertNothingCached, pushTestImage, rejectsWith, signImage, storeFor } from "./_helpers.ts";

Deno.test("image signatures: key-based and keyless, verified offline", async (t) => {
  const reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "bpfd-sig-test-" });
  let n = 0;
  const cache = () => join(dir, `cache-${n++}`);
  try {
    const ss = await TestSigstore.create(dir);
    const root = await ss.trustedRoot();
    const keyA = newKeyPair();
    const keyB = newKeyPair();
    const pusher = storeFor(reg, cache());
    const withBundle = (kp: typeof keyA) => (payload: Uint8Array, sig: Uint8Array) => ({
      [ANN_BUNDLE]: ss.rekorBundle(payload, sig, kp.publicPem),
    });

    await t.step("signed with a trusted key (with and without Rekor entry) loads", async () => {
      const d1 = await pushTestImage(pusher, reg, "sig/key:v1");
      await signImage(pusher, reg, "sig/key", d1, (p) => signWith(keyA.privatePem, p), withBundle(keyA));
      const store = storeFor(reg, cache(), {
        signature: {
          allowUnsigned: false,
          keys: [keyA.publicPem],
          trustedRoot: root,
          requireTlogForKeys: true,
        },
      });
      const pulled = await store.pull({ url: `${reg.host}/sig/key:v1` });
      assert.deepEqual(pulled.signature, { verified: true, by: `key ${keyFingerprint(keyA.spkiDer)}` });
      assert.equal(pulled.digest, d1);

      const d2 = await pushTestImage(pusher, reg, "sig/key-notlog:v1", { maps: { other: "hash" } });
      await signImage(pusher, reg, "sig/key-notlog", d2, (p) => signWith(keyA.privatePem, p));
      const store2 = storeFor(reg, cache(), { signature: { allowUnsigned: false, keys: [keyA.publicPem] } });
      assert.equal((await store2.pull({ url: `${reg.host}/sig/key-notlog:v1` })).signature?.verified, true);
      // ...but not when the policy asks for a transparency-log entry.
      const strict = storeFor(reg, cache(), {
        signature: {
          allowUnsigned: false,
          keys: [keyA.publicPem],
          trustedRoot: root,
          requireTlogForKeys: true,
        },
      });
      await rejectsWith(
        strict.pull({ url: `${reg.host}/sig/key-notlog:v1` }),
        "bad_signature",
        /Rekor entry/,
      );
      await assertNothingCached(strict);
    });

    await t.step("unsigned image refused when unsigned images are not allowed", async () => {
      await pushTestImage(pusher, reg, "sig/unsigned:v1");
      const store = storeFor(reg, cache(), { signature: { allowUnsigned: false, keys: [keyA.publicPem] } });
      await rejectsWith(
        store.pull({ url: `${reg.host}/sig/unsigned:v1` }),
        "unsigned",
        /no cosign signature/,
      );
      await assertNothingCached(store);
      // The default policy allows it and says so.
      const lax = storeFor(reg, cache());
      assert.deepEqual((await lax.pull({ url: `${reg.host}/sig/unsigned:v1` })).signature, {
        verified: false,
        note: "unsigned",
      });
    });

    await t.step("signed by an untrusted key: refused, naming the key", async () => {
      const d = await pushTestImage(pusher, reg, "sig/wrongkey:v1");
      await signImage(pusher, reg, "sig/wrongkey", d, (p) => signWith(keyB.privatePem, p), withBundle(keyB));
      const store = storeFor(reg, cache(), {
        signature: { allowUnsigned: true, keys: [keyA.publicPem], trustedRoot: root },
      });
      await rejectsWith(
        store.pull({ url: `${reg.host}/sig/wrongkey:v1` }),
        "untrusted_key",
        new RegExp(`signed by key ${keyFingerprint(keyB.spkiDer)}, which is not among the 1 trusted keys`),
      );
      await assertNothingCached(store);
    });

    await t.step("tampered payload: refused as a bad signature", async () => {
      const d = await pushTestImage(pusher, reg, "sig/tamperpayload:v1");
      const original = simpleSigningPayload(`${reg.host}/sig/tamperpayload`, d);
      const sig = signWith(keyA.privatePem, original);
      const bundle = ss.rekorBundle(original, sig, keyA.publicPem);
      // The payload changed after signing (another docker-reference), signature and entry kept.
      const tampered = simpleSigningPayload(`${reg.host}/evil/elsewhere`, d);
      await signImage(
        pusher,
        reg,
        "sig/tamperpayload",
        d,
        () => sig,
        () => ({ [ANN_BUNDLE]: bundle }),
        tampered,
      );
      const store = storeFor(reg, cache(), {
        signature: { allowUnsigned: true, keys: [keyA.publicPem], trustedRoot: root },
      });
      await rejectsWith(store.pull({ url: `${reg.host}/sig/tamperpayload:v1` }), "bad_signature");
      // Without a Rekor entry the same tampering is still refused.
      const d2 = await pushTestImage(pusher, reg, "sig/tamperpayload2:v1");
      const sig2 = signWith(keyA.privatePem, simpleSigningPayload(`${reg.host}/sig/tamperpayload2`, d2));
      await signImage(
        pusher,
        reg,
        "sig/tamperpayload2",
        d2,
        () => sig2,
        undefined,
        simpleSigningPayload(`${reg.host}/evil`, d2),
      );
      await rejectsWith(
        store.pull({ url: `${reg.host}/sig/tamperpayload2:v1` }),
        "untrusted_key",
        /payload was changed/,
      );
      await assertNothingCached(store);
    });

    await t.step("tampered layer (image replaced, old signature copied): digest mismatch", async () => {
      const d1 = await pushTestImage(pusher, reg, "sig/tamperlayer:v1");
      const payload = simpleSigningPayload(`${reg.host}/sig/tamperlayer`, d1);
      const sig = signWith(keyA.privatePem, payload);
      const ann = { [ANN_BUNDLE]: ss.rekorBundle(payload, sig, keyA.publicPem) };
      await signImage(pusher, reg, "sig/tamperlayer", d1, () => sig, () => ann, payload);
      // Someone pushes other bytecode under the same tag and copies the signature to it.
      const d2 = await pushTestImage(pusher, reg, "sig/tamperlayer:v1", {
        objects: [{ name: "xdp_counter.bpf.o", bytes: new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]) }],
      });
      assert.notEqual(d1, d2);
      await signImage(pusher, reg, "sig/tamperlayer", d2, () => sig, () => ann, payload);
      const store = storeFor(reg, cache(), {
        signature: { allowUnsigned: false, keys: [keyA.publicPem], trustedRoot: root },
      });
      await rejectsWith(
        store.pull({ url: `${reg.host}/sig/tamperlayer:v1` }),
        "digest_mismatch",
        new RegExp(`signed digest ${d1} is not the image's digest ${d2}`),
      );
      await assertNothingCached(store);
    });

    await t.step(
      "keyless: trusted identity loads; wrong identity, wrong issuer, foreign CA, foreign log refused",
      async () => {
        const issuer = "https://issuer.bpfd.test";
        const subject = "release@bpfd.test";
        const [certPem, certKey] = await ss.certificate(subject, issuer);
        const chain = await Deno.readTextFile(ss.fulcio.caCert);
        const d = await pushTestImage(pusher, reg, "sig/keyless:v1");
        await signImage(
          pusher,
          reg,
          "sig/keyless",
          d,
          (p) => signWith(certKey, p),
          (p, s) => ss.keylessAnnotations(p, s, certPem, chain),
        );
        const policy = (identities: { subject?: string; subjectRegExp?: string; issuer: string }[]) =>
          storeFor(reg, cache(), { signature: { allowUnsigned: false, identities, trustedRoot: root } });
        const ok = await policy([{ subject, issuer }]).pull({ url: `${reg.host}/sig/keyless:v1` });
        assert.deepEqual(ok.signature, { verified: true, by: `${subject} (issuer ${issuer})` });
        const re = await policy([{ subjectRegExp: ".*@bpfd\\.test", issuer }]).pull({
          url: `${reg.host}/sig/keyless:v1`,
        });
        assert.equal(re.signature?.verified, true);

        const wrongId = policy([{ subject: "someone@else.test", issuer }]);
        await rejectsWith(
          wrongId.pull({ url: `${reg.host}/sig/keyless:v1` }),
          "identity_mismatch",
          /certificate identity release@bpfd.test with issuer https:\/\/issuer.bpfd.test matches none/,
        );
        await assertNothingCached(wrongId);
        const wrongIssuer = policy([{ subject, issuer: "https://other-issuer.test" }]);
        await rejectsWith(wrongIssuer.pull({ url: `${reg.host}/sig/keyless:v1` }), "identity_mismatch");
        await assertNothingCached(wrongIssuer);

        // A certificate from a CA that is not the trusted root.
        const other = await TestSigstore.create(await Deno.makeTempDir({ dir, prefix: "other-" }));
        const [foreignCert, foreignKey] = await other.certificate(subject, issuer);
        const d2 = await pushTestImage(pusher, reg, "sig/keyless-foreignca:v1");
        await signImage(
          pusher,
          reg,
          "sig/keyless-foreignca",
          d2,
          (p) => signWith(foreignKey, p),
          (p, s) => ss.keylessAnnotations(p, s, foreignCert, ""),
        );
        const store = policy([{ subject, issuer }]);
        await rejectsWith(
          store.pull({ url: `${reg.host}/sig/keyless-foreignca:v1` }),
          "untrusted_key",
          /does not chain to a trusted certificate authority/,
        );
        // A SET signed by another log's key.
        const d3 = await pushTestImage(pusher, reg, "sig/keyless-foreignlog:v1");
        await signImage(
          pusher,
          reg,
          "sig/keyless-foreignlog",
          d3,
          (p) => signWith(certKey, p),
          (p, s) => ({
            ...ss.keylessAnnotations(p, s, certPem, chain),
            [ANN_BUNDLE]: other.rekorBundle(p, s, certPem),
          }),
        );
        await rejectsWith(
          store.pull({ url: `${reg.host}/sig/keyless-foreignlog:v1` }),
          "bad_signature",
          /Rekor/,
        );
        await assertNothingCached(store);
      },
    );

    await t.step("policy applies to cached images too, and verification needs no network", async () => {
      const d = await pushTestImage(pusher, reg, "sig/cached:v1", { maps: { cached: "array" } });
      await signImage(pusher, reg, "sig/cached", d, (p) => signWith(keyA.privatePem, p), withBundle(keyA));
      const cacheDir = cache();
      const first = storeFor(reg, cacheDir, { signature: { keys: [keyA.publicPem], trustedRoot: root } });
      assert.equal((await first.pull({ url: `${reg.host}/sig/cached:v1` })).signature?.verified, true);
      // Same cache, a policy that trusts only key B: the cached image is refused.
      const other = storeFor(reg, cacheDir, { signature: { keys: [keyB.publicPem], trustedRoot: root } });
      await rejectsWith(
        other.pull({ url: `${reg.host}/sig/cached:v1`, pullPolicy: "Never" }),
        "untrusted_key",
      );
      // In a network namespace of its own (only a down loopback), the CLI verifies from the cache.
      const cfg = join(dir, "offline.json");
      await Deno.writeTextFile(
        cfg,
        JSON.stringify({
          cacheDir,
          signature: { allowUnsigned: false, keys: [keyA.publicPem], trustedRoot: root },
        }),
      );
      const deno = Deno.execPath();
      const cli = new URL("../../../cli/image.ts", import.meta.url).pathname;
      const out = await new Deno.Command("unshare", {
        args: [
          "--net",
          deno,
          "run",
          "-A",
          "--quiet",
          cli,
          "pull",
          "--config",
          cfg,
          "--policy",
          "Never",
          "--json",
          `${reg.host}/sig/cached:v1`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const pulled = JSON.parse(text);
      assert.equal(pulled.digest, d);
      assert.equal(pulled.signature.verified, true);
      assert.equal(pulled.fromCache, true);
    });

    await t.step("allow-list: prefixes and digests", async () => {
      const d = await pushTestImage(pusher, reg, "allow/ok:v1", { maps: { allowed: "array" } });
      const byPrefix = storeFor(reg, cache(), { allow: [`${reg.host}/allow/`] });
      assert.equal((await byPrefix.pull({ url: `${reg.host}/allow/ok:v1` })).digest, d);
      const other = storeFor(reg, cache(), { allow: [`${reg.host}/somewhere-else/`] });
      await rejectsWith(other.pull({ url: `${reg.host}/allow/ok:v1` }), "not_allowed", /allow-list/);
      await assertNothingCached(other);
      const byDigest = storeFor(reg, cache(), { allow: ["quay.io/x/", d] });
      assert.equal((await byDigest.pull({ url: `${reg.host}/allow/ok:v1` })).digest, d);
    });
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
