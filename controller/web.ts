/**
 * The controller's read-only web server (`--web-listen HOST:PORT`): the inventory page at `/` (needs
 * `list` on bpfnodeinventories), `/metrics` (needs `get` on the non-resource URL /metrics), `/healthz`
 * open. Callers present a bearer token (Authorization header, or the cookie `/login` sets from a token
 * in the URL's fragment); controller/web_auth.ts checks it with TokenReview and SubjectAccessReview.
 *
 * @example
 * ```ts
 * const app = webApp({ kc, controller, metrics: controllerMetrics(controller) });
 * Deno.serve({ hostname: "127.0.0.1", port: 8443, cert, key }, app.fetch);
 * ```
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { Hono } from "hono";
import type { Context } from "hono";
import type { Registry } from "prom-client";
import { INVENTORY } from "../model/inventory.ts";
import type { BpfNodeInventorySpec } from "../model/inventory.ts";
import type { Controller } from "./controller.ts";
import { type WebAction, WebAuth } from "./web_auth.ts";
import { inventoryPage, LOGIN_PAGE, type PageData } from "./web_page.ts";

const COOKIE = "bpfd_token";

/** What the web app reads. */
export interface WebOptions {
  kc: k8s.KubeConfig;
  controller: Controller;
  metrics: Registry;
  auth?: WebAuth;
}

function tokenOf(c: Context): string | undefined {
  const bearer = c.req.header("authorization")?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (bearer) return bearer;
  const cookie = c.req.header("cookie")?.split(/;\s*/).find((p) => p.startsWith(`${COOKIE}=`));
  return cookie ? decodeURIComponent(cookie.slice(COOKIE.length + 1)) : undefined;
}

/** The web app. */
export function webApp(opts: WebOptions): Hono {
  const auth = opts.auth ?? new WebAuth(opts.kc);
  const custom = opts.kc.makeApiClient(k8s.CustomObjectsApi);
  const app = new Hono();
  const guard = async (c: Context, action: WebAction) => {
    try {
      return await auth.check(tokenOf(c), action);
    } catch (err) {
      return { ok: false as const, status: 503 as const, reason: `cannot check: ${(err as Error).message}` };
    }
  };

  app.get("/healthz", (c) => c.text("ok"));
  app.get("/login", (c) => c.html(LOGIN_PAGE));
  app.post("/login", async (c) => {
    const v = await guard(c, "page");
    if (!v.ok) return c.text(v.reason, v.status);
    const secure = new URL(c.req.url).protocol === "https:" ? "; Secure" : "";
    c.header(
      "set-cookie",
      `${COOKIE}=${
        encodeURIComponent(tokenOf(c)!)
      }; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600${secure}`,
    );
    return c.text("ok");
  });
  app.get("/metrics", async (c) => {
    const v = await guard(c, "metrics");
    if (!v.ok) return c.text(v.reason, v.status);
    return c.body(await opts.metrics.metrics(), 200, { "content-type": opts.metrics.contentType });
  });
  app.get("/", async (c) => {
    const v = await guard(c, "page");
    if (!v.ok) {
      if (v.status === 401) c.header("WWW-Authenticate", 'Bearer realm="bpfd"');
      return c.text(`${v.reason}\nSign in at /login#token=<token>.`, v.status);
    }
    const list = await custom.listClusterCustomObject({
      group: INVENTORY.group,
      version: INVENTORY.version,
      plural: INVENTORY.plural,
    }) as { items: Array<{ metadata: { name: string }; spec: BpfNodeInventorySpec }> };
    const q = (k: string) => c.req.query(k) || undefined;
    const store = opts.controller.store;
    const data: PageData = {
      inventories: list.items.map((i) => ({ name: i.metadata.name, spec: i.spec }))
        .sort((a, b) => a.name.localeCompare(b.name)),
      configs: store.configs().map((cfg) => ({
        name: cfg.metadata?.name ?? "",
        type: cfg.spec.type,
        program: cfg.spec.name,
        selected: cfg.status?.nodes?.selected ?? 0,
        loaded: cfg.status?.nodes?.loaded ?? 0,
        failing: cfg.status?.nodes?.failing ?? 0,
      })),
      programs: store.programs().map((bp) => {
        const loaded = bp.status?.conditions?.find((x) => x.type === "Loaded");
        return {
          name: bp.metadata?.name ?? "",
          node: bp.spec.node ?? "",
          config: bp.metadata?.labels?.owningConfig ?? "",
          loaded: loaded?.status ?? "",
          reason: loaded?.reason ?? "",
          message: loaded?.message ?? "",
        };
      }),
      filter: { node: q("node"), type: q("type"), namespace: q("namespace"), config: q("config") },
      user: v.user,
    };
    return c.html(inventoryPage(data));
  });
  return app;
}

/** Where the web server listens, and its TLS files (plain HTTP without them: keep it on loopback). */
export interface WebListen {
  listen: string;
  certFile?: string;
  keyFile?: string;
}

/** Serves the page and the controller's metrics; `shutdown()` stops it. */
export async function startWeb(
  kc: k8s.KubeConfig,
  controller: Controller,
  at: WebListen,
): Promise<Deno.HttpServer> {
  const { controllerMetrics } = await import("./metrics.ts");
  const app = webApp({ kc, controller, metrics: controllerMetrics(controller) });
  const i = at.listen.lastIndexOf(":");
  const tls = at.certFile && at.keyFile
    ? { cert: await Deno.readTextFile(at.certFile), key: await Deno.readTextFile(at.keyFile) }
    : {};
  const server = Deno.serve({
    hostname: at.listen.slice(0, i).replace(/^\[|\]$/g, ""),
    port: Number(at.listen.slice(i + 1)),
    onListen: () => {},
    ...tls,
  }, app.fetch);
  controller.log.info("web: serving the inventory page and /metrics", { listen: at.listen, tls: !!tls.cert });
  return server;
}
