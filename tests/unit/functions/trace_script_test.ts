/** bpftrace program text seen from a container's root. */
import assert from "node:assert/strict";
import { inContainerRoot } from "../../../functions/_trace_script.ts";

Deno.test("trace script: uprobe, uretprobe, usdt and their short forms move under the root; nothing else does", () => {
  const root = "/proc/42/root";
  assert.equal(
    inContainerRoot("uprobe:/app/server:handle,uretprobe:/app/server:handle { @ = count(); }", root),
    "uprobe:/proc/42/root/app/server:handle,uretprobe:/proc/42/root/app/server:handle { @ = count(); }",
  );
  assert.equal(
    inContainerRoot("u:/bin/sh:main\nur:/bin/sh:main {}", root),
    "u:/proc/42/root/bin/sh:main\nur:/proc/42/root/bin/sh:main {}",
  );
  assert.equal(inContainerRoot("usdt:/app/s:p:q {}", root), "usdt:/proc/42/root/app/s:p:q {}");
  const untouched = 'tracepoint:syscalls:sys_enter_openat /str(args->filename) == "u:/x"/ { @ = count(); }';
  assert.equal(inContainerRoot(untouched, root), untouched);
});
