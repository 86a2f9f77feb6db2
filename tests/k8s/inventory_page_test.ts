// The controller's inventory page and metrics on a real API server with two node runtimes publishing
// their inventories: refused without a token (401) and for a user without rights (403); the viewer (bob)
// sees every node; in headless Chromium (Debian's `chromium`, which tests/k8s/setup.sh installs) the login from
// the URL's fragment shows the page, the node filter leaves only that node's programs, and a screenshot
// is kept (its path is printed). /metrics parses as Prometheus text for a user allowed to get /metrics.
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { TestCluster } from "./_cluster.ts";
import { freePort, waitFor } from "../_kube.ts";
import { bytecodePath } from "../_runtime.ts";
import { INVENTORY } from "../../model/inventory.ts";

/** Runs headless Chromium on `url` with a fresh profile; `mode` is --dump-dom or --screenshot=FILE. */
async function chromium(url: string, mode: string): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "bpfd-chromium-" });
  try {
    const out = await new Deno.Command("chromium", {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=5000",
        "--window-size=1400,1000",
        mode,
        url,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) throw new Error(`chromium: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

Deno.test("inventory page: RBAC decides, Chromium renders every node, the node filter works, a screenshot is kept; controller /metrics parses", async () => {
  "chromium";
  const cluster = await TestCluster.start({
    nodes: [{ name: "node-a" }, { name: "node-b" }],
    inventory: { minWriteSeconds: 1, fullSeconds: 2 },
  });
  try {
    const a = cluster.runtimes.get("node-a")!;
    const load = await a.call("load", {
      bytecode: { path: bytecodePath("xdp_counter") },
      programs: [{ name: "xdp_counter", type: "xdp" }],
    });
    assert.equal(load.status, 200, JSON.stringify(load.body));
    const id = load.body.programs[0].id;
    assert.equal(
      (await a.call("attach", { programId: id, attach: { type: "xdp", iface: "eth0" } })).status,
      200,
    );
    for (const node of ["node-a", "node-b"]) {
      await waitFor(
        `${node} inventory`,
        async () => {
          const i = await cluster.custom.getClusterCustomObject({
            group: INVENTORY.group,
            version: INVENTORY.version,
            plural: INVENTORY.plural,
            name: node,
          }).catch(() => undefined) as { spec: { programs: Array<{ id: number }> } } | undefined;
          return node === "node-b" ? i : i?.spec.programs.some((p) => p.id === id);
        },
        30000,
        250,
      );
    }
    for (
      const doc of [
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRole",
          metadata: { name: "inventory-viewer" },
          rules: [{ apiGroups: ["bpfd.io"], resources: [INVENTORY.plural], verbs: ["get", "list"] }],
        },
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRoleBinding",
          metadata: { name: "bob-inventory" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "inventory-viewer" },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "bob" }],
        },
      ]
    ) {
      const r = await cluster.kube.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(doc) });
      assert.equal(r.code, 0, r.stderr);
    }
    const port = freePort();
    await cluster.startController("web", ["--web-listen", `127.0.0.1:${port}`]);
    const base = `http://127.0.0.1:${port}`;
    await waitFor("controller web up", async () => (await fetch(`${base}/healthz`)).ok, 30000, 200);
    const get = async (path: string, token?: string) => {
      const r = await fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      return { status: r.status, text: await r.text() };
    };

    assert.equal((await get("/")).status, 401);
    assert.equal((await get("/", "not-a-token")).status, 401);
    assert.equal((await get("/", cluster.kube.users.alice.token)).status, 403);
    const bob = cluster.kube.users.bob.token;
    const page = await get("/", bob);
    assert.equal(page.status, 200);
    assert.match(page.text, /data-node="node-a"/);
    assert.match(page.text, /data-node="node-b"/);
    assert.match(page.text, /xdp_counter/);

    const dom = await chromium(`${base}/login#token=${bob}`, "--dump-dom");
    assert.match(dom, /BPF programs in the cluster/);
    assert.match(dom, /data-node="node-a"/);
    assert.match(dom, /data-node="node-b"/);
    const filtered = await chromium(`${base}/login#token=${bob}&next=/?node=node-b`, "--dump-dom");
    assert.match(filtered, /data-node="node-b"/);
    assert.doesNotMatch(filtered, /data-node="node-a"/);
    const byType = await chromium(`${base}/login#token=${bob}&next=/?type=xdp`, "--dump-dom");
    const types = [...byType.matchAll(/data-type="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(types.length > 0 && types.every((t) => t === "xdp"), types.join(","));

    const dir = Deno.env.get("BPFD_TEST_REPORT_DIR") ?? "/tmp";
    const shot = `${dir}/bpfd-inventory-page.png`;
    await chromium(`${base}/login#token=${bob}`, `--screenshot=${shot}`);
    assert.ok((await Deno.stat(shot)).size > 10_000, "a screenshot with content");
    console.log(`screenshot: ${shot}`);

    assert.equal((await get("/metrics", bob)).status, 403);
    const metrics = await get("/metrics", cluster.kube.admin.token);
    assert.equal(metrics.status, 200);
    const names = new Set(
      (parsePrometheusTextFormat(metrics.text) as Array<{ name: string }>).map((f) => f.name),
    );
    assert.ok(names.has("bpfd_controller_queue_depth"), [...names].join(","));
    assert.ok(names.has("bpfd_controller_reconcile_duration_seconds"));
  } finally {
    await cluster.stop();
  }
});
