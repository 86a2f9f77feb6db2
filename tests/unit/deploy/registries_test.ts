import assert from "node:assert/strict";
import { registryOptions } from "../../../deploy/registries.ts";

Deno.test("deploy's registry flags: hosts and PEM files accepted, a scheme, a path or a non-PEM file refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    await Deno.writeTextFile(`${dir}/a.pem`, pem);
    await Deno.writeTextFile(`${dir}/b.pem`, pem);
    await Deno.writeTextFile(`${dir}/not.pem`, "hello");
    assert.deepEqual(await registryOptions(), {});
    const ok = await registryOptions(["10.0.0.1:5000", "registry.local", "[::1]:5000"], [
      `${dir}/a.pem`,
      `${dir}/b.pem`,
    ]);
    assert.deepEqual(ok.insecureRegistries, ["10.0.0.1:5000", "registry.local", "[::1]:5000"]);
    assert.equal(ok.registryCa, pem + pem);
    for (const bad of ["http://r:5000", "r:5000/path", "", "r:port"]) {
      await assert.rejects(registryOptions([bad]), /--insecure-registry: a registry host\[:port\]/);
    }
    await assert.rejects(
      registryOptions([], [`${dir}/not.pem`]),
      /--registry-ca: .*not.pem holds no PEM certificate/,
    );
    await assert.rejects(registryOptions([], [`${dir}/missing`]), /--registry-ca: cannot read .*missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
