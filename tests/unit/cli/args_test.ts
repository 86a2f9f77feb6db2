/** The `bpfd` command line becomes the function call it asks for, without a runtime. */
import assert from "node:assert/strict";
import { parseCommandLine, requestFor, UsageError } from "../../../cli/args.ts";

/** The function call for a command line, as `bpfd` would send it. */
function request(...args: string[]) {
  const { values, command, rest } = parseCommandLine(args);
  return requestFor(command!, rest, values);
}

Deno.test("bpfd: the socket, output format and help have defaults and short forms", () => {
  const { values, command, rest } = parseCommandLine(["-o", "json", "get", "7"]);
  assert.equal(values.socket, "/run/bpfd/bpfd.sock");
  assert.equal(values.output, "json");
  assert.equal(values.url, undefined);
  assert.equal(command, "get");
  assert.deepEqual(rest, ["7"]);
  assert.equal(parseCommandLine(["-h"]).values.help, true);
  assert.equal(parseCommandLine([]).command, undefined);
  assert.equal(parseCommandLine(["--url", "https://n:50052", "list"]).values.url, "https://n:50052");
});

Deno.test("bpfd load: a relative --path is made absolute, globals go from hex to base64, metadata to a map", () => {
  assert.deepEqual(
    request(
      "load",
      "--path",
      "build/x.bpf.o",
      "--program",
      "xdp_counter:xdp",
      "--program",
      "probe:kprobe:do_sys_open",
      "--global",
      "limit=0x01000000",
      "--metadata",
      "app=demo",
      "--metadata",
      "team=net=edge",
      "--map-owner-id",
      "12",
    ),
    {
      fn: "load",
      input: {
        bytecode: { path: `${Deno.cwd()}/build/x.bpf.o` },
        programs: [{ name: "xdp_counter", type: "xdp" }, {
          name: "probe",
          type: "kprobe",
          fnName: "do_sys_open",
        }],
        globalData: { limit: btoa("\x01\x00\x00\x00") },
        metadata: { app: "demo", team: "net=edge" },
        mapOwnerId: 12,
      },
    },
  );
});

Deno.test("bpfd load --image: names an image with its pull policy, and may leave the programs to its labels", () => {
  assert.deepEqual(request("load", "--image", "quay.io/x/y:v1", "--pull-policy", "Always"), {
    fn: "load",
    input: {
      bytecode: { image: { url: "quay.io/x/y:v1", pullPolicy: "Always" } },
      globalData: {},
      metadata: {},
    },
  });
  assert.deepEqual(request("load", "--path", "/abs/x.o").input.bytecode, { path: "/abs/x.o" });
});

Deno.test("bpfd attach: the program id and type are positional, and only the options given are sent", () => {
  assert.deepEqual(
    request(
      "attach",
      "42",
      "tc",
      "--iface",
      "eth0",
      "--direction",
      "ingress",
      "--priority",
      "10",
      "--proceed-on",
      "ok,pipe",
    ),
    {
      fn: "attach",
      input: {
        programId: 42,
        attach: { type: "tc", iface: "eth0", direction: "ingress", priority: 10, proceedOn: ["ok", "pipe"] },
      },
    },
  );
  assert.deepEqual(
    request("attach", "3", "uprobe", "--target", "libc", "--fn-name", "malloc", "--pid", "99"),
    {
      fn: "attach",
      input: { programId: 3, attach: { type: "uprobe", fnName: "malloc", target: "libc", pid: 99 } },
    },
  );
});

Deno.test("bpfd modify, detach, unload, get and list: ids are numbers, list filters only when asked", () => {
  assert.deepEqual(request("modify", "5", "--priority", "1", "--proceed-on", "pass"), {
    fn: "modify",
    input: { linkId: 5, priority: 1, proceedOn: ["pass"] },
  });
  assert.deepEqual(request("modify", "5"), { fn: "modify", input: { linkId: 5 } });
  assert.deepEqual(request("detach", "1"), { fn: "detach", input: { linkId: 1 } });
  assert.deepEqual(request("unload", "42"), { fn: "unload", input: { programId: 42 } });
  assert.deepEqual(request("get", "42"), { fn: "get", input: { programId: 42 } });
  assert.deepEqual(request("list"), { fn: "list", input: {} });
  assert.deepEqual(request("list", "--all", "--type", "xdp", "--metadata", "app=demo"), {
    fn: "list",
    input: { all: true, type: "xdp", metadata: { app: "demo" } },
  });
});

Deno.test("bpfd: usage mistakes are UsageErrors that say what is wrong", () => {
  const mistakes: Array<[string[], RegExp]> = [
    [["list", "--bogus"], /bogus/],
    [["--priority"], /priority/],
    [["get"], /get needs PROGRAM_ID/],
    [["get", "x1"], /PROGRAM_ID must be a number, got "x1"/],
    [["attach", "1"], /attach needs TYPE/],
    [["attach", "1", "xdp", "--priority", "ten"], /--priority must be a number, got "ten"/],
    [["load"], /load needs --path FILE or --image URL/],
    [["load", "--path", "/x.o", "--program", "nameonly"], /--program takes NAME:TYPE\[:FN\], got "nameonly"/],
    [["load", "--path", "/x.o", "--metadata", "=v"], /--metadata takes KEY=VALUE, got "=v"/],
    [["load", "--path", "/x.o", "--global", "g=123"], /--global g: the value must be hex bytes/],
    [["frobnicate"], /unknown command "frobnicate"/],
  ];
  for (const [args, message] of mistakes) {
    assert.throws(
      () => request(...args),
      (err) => err instanceof UsageError && message.test(err.message),
      args.join(" "),
    );
  }
});
