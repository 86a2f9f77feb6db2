// Smoke test of the API-server harness: a real kube-apiserver + etcd, @kubernetes/client-node from Deno,
// kubectl, RBAC with token users, and a CRD created, used and deleted.
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { startKube, waitFor } from "../_kube.ts";

Deno.test("kube harness: real apiserver, client-node, kubectl, RBAC, CRD lifecycle", async (t) => {
  const kube = await startKube();
  try {
    const kc = kube.kubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);

    await t.step("client-node lists namespaces", async () => {
      const ns = await core.listNamespace();
      const names = ns.items.map((n) => n.metadata?.name);
      assert.ok(names.includes("default"), `namespaces: ${names}`);
      assert.ok(names.includes("kube-system"), `namespaces: ${names}`);
    });

    await t.step("kubectl talks to it", async () => {
      const r = await kube.kubectl(["get", "namespaces", "-o", "name"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /namespace\/default/);
    });

    await t.step(
      "RBAC: a token user without bindings is forbidden, a bad token is unauthorized",
      async () => {
        const alice = kube.kubeConfig("alice").makeApiClient(k8s.CoreV1Api);
        await assert.rejects(alice.listNamespace(), (e: unknown) => (e as { code?: number }).code === 403);
        const r = await fetch(`${kube.server}/api/v1/namespaces`, {
          client: Deno.createHttpClient({ caCerts: [kube.caPem] }),
          headers: { authorization: "Bearer not-a-token" },
        });
        await r.body?.cancel();
        assert.equal(r.status, 401);
      },
    );

    await t.step("a CRD is created, established, used and deleted", async () => {
      const crd: k8s.V1CustomResourceDefinition = {
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        metadata: { name: "widgets.smoke.bpfd.io" },
        spec: {
          group: "smoke.bpfd.io",
          scope: "Cluster",
          names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
          versions: [{
            name: "v1",
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: "object",
                properties: {
                  spec: { type: "object", properties: { size: { type: "integer", minimum: 1 } } },
                },
              },
            },
          }],
        },
      };
      await ext.createCustomResourceDefinition({ body: crd });
      await waitFor("CRD established", async () => {
        const c = await ext.readCustomResourceDefinition({ name: "widgets.smoke.bpfd.io" });
        return c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True");
      });
      const obj = {
        apiVersion: "smoke.bpfd.io/v1",
        kind: "Widget",
        metadata: { name: "w1" },
        spec: { size: 3 },
      };
      // The discovery of a new CRD can lag a little behind Established.
      await waitFor(
        "widget created",
        async () => {
          await custom.createClusterCustomObject({
            group: "smoke.bpfd.io",
            version: "v1",
            plural: "widgets",
            body: obj,
          });
          return true;
        },
        15000,
        200,
      );
      const got = await custom.getClusterCustomObject({
        group: "smoke.bpfd.io",
        version: "v1",
        plural: "widgets",
        name: "w1",
      }) as { spec: { size: number } };
      assert.equal(got.spec.size, 3);
      // The schema is enforced by the server.
      await assert.rejects(
        custom.createClusterCustomObject({
          group: "smoke.bpfd.io",
          version: "v1",
          plural: "widgets",
          body: { ...obj, metadata: { name: "w2" }, spec: { size: 0 } },
        }),
        (e: unknown) => (e as { code?: number }).code === 422,
      );
      await ext.deleteCustomResourceDefinition({ name: "widgets.smoke.bpfd.io" });
      await waitFor("CRD gone", async () => {
        try {
          await ext.readCustomResourceDefinition({ name: "widgets.smoke.bpfd.io" });
          return false;
        } catch (e) {
          return (e as { code?: number }).code === 404;
        }
      });
    });
  } finally {
    await kube.stop();
  }
  // Nothing left behind.
  await assert.rejects(Deno.stat(kube.dir));
});
