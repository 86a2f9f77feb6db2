/** The controller's settings from the `bpfd-config` ConfigMap, without a cluster. */
import assert from "node:assert/strict";
import { parseSettings } from "../../../controller/settings.ts";

const DEFAULTS = {
  "bpfd.node.port": 50052,
  "bpfd.node.timeout.seconds": 30,
  "bpfd.resync.seconds": 30,
  "bpfd.log.level": "info",
};

Deno.test("settings: a missing or empty ConfigMap means every default, with no problems", () => {
  assert.deepEqual(parseSettings(undefined), { settings: DEFAULTS, problems: [] });
  assert.deepEqual(parseSettings({}), { settings: DEFAULTS, problems: [] });
});

Deno.test("settings: ConfigMap strings become numbers and names", () => {
  const { settings, problems } = parseSettings({
    "bpfd.node.port": "6000",
    "bpfd.node.timeout.seconds": "2.5",
    "bpfd.resync.seconds": "86400",
    "bpfd.log.level": "debug",
  });
  assert.deepEqual(problems, []);
  assert.deepEqual(settings, {
    "bpfd.node.port": 6000,
    "bpfd.node.timeout.seconds": 2.5,
    "bpfd.resync.seconds": 86400,
    "bpfd.log.level": "debug",
  });
});

Deno.test("settings: bpfd.signature.policy is gone (BpfPolicy signers replace it): unknown, ignored", () => {
  const { settings, problems } = parseSettings({ "bpfd.signature.policy": "requireSigned" });
  assert.deepEqual(settings, DEFAULTS);
  assert.deepEqual(problems, ["bpfd.signature.policy: unknown key (ignored)"]);
});

Deno.test("settings: a bad value is reported and replaced by its default; the good ones beside it stay", () => {
  const { settings, problems } = parseSettings({
    "bpfd.node.port": "6000",
    "bpfd.resync.seconds": "-1",
    "bpfd.log.level": "debug",
    "bpfd.other": "x",
  });
  assert.equal(settings["bpfd.node.port"], 6000);
  assert.equal(settings["bpfd.resync.seconds"], 30);
  assert.equal(settings["bpfd.log.level"], "debug");
  assert.equal(problems.length, 2);
  assert.match(problems.join("; "), /bpfd\.resync\.seconds: .*default used/);
  assert.match(problems.join("; "), /bpfd\.other: unknown key \(ignored\)/);
});

Deno.test("settings: ports outside 1-65535, periods outside (0, 1 day] and unknown names fall back to defaults", () => {
  const bad: Record<string, string[]> = {
    "bpfd.node.port": ["0", "65536", "80.5", "http"],
    "bpfd.node.timeout.seconds": ["0", "86401", "soon"],
    "bpfd.resync.seconds": ["-5"],
    "bpfd.log.level": ["trace", "INFO"],
  };
  for (const [key, values] of Object.entries(bad)) {
    for (const value of values) {
      const { settings, problems } = parseSettings({ [key]: value });
      assert.deepEqual(settings, DEFAULTS, `${key}=${value}`);
      assert.equal(problems.length, 1, `${key}=${value}`);
      assert.match(problems[0], new RegExp(`^${key.replaceAll(".", "\\.")}: .* \\(default used\\)$`));
    }
  }
});
