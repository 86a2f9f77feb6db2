/**
 * The inventory page, server-rendered with hono's `html` templates (values escaped; no script but the
 * login's): the configs with their nodes Loaded/failing, a config's per-node state, every node's programs
 * (managed or not, where attached, who put them there), and each hook's chain in run order; filtered by
 * node, type, holders' namespace and config through the query string.
 *
 * @example
 * ```ts
 * const page = await inventoryPage({ inventories, configs, programs, filter: { node: "node-a" }, user: "bob" });
 * ```
 * @module
 */
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { describeAttachment, type InventoryProgram, ownerOf } from "../model/inventory.ts";
import type { BpfNodeInventorySpec } from "../model/inventory.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** What the page shows. */
export interface PageData {
  inventories: Array<{ name: string; spec: BpfNodeInventorySpec }>;
  configs: Array<
    { name: string; type: string; program: string; selected: number; loaded: number; failing: number }
  >;
  /** BpfPrograms (one per config and node) with their Loaded condition. */
  programs: Array<
    { name: string; node: string; config: string; loaded: string; reason: string; message: string }
  >;
  filter: PageFilter;
  user: string;
}

/** The query string's filters. */
export interface PageFilter {
  node?: string;
  type?: string;
  namespace?: string;
  config?: string;
}

const STYLE =
  `body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}
tr.unmanaged td{background:#fff6e0}tr.managed td{background:#eef7ee}.muted{color:#777}form *{margin-right:.5em}
h2{margin-top:1.2em}code{font-size:12px}`;

/** Whether program `p` of a node passes the filter. */
export function matches(p: InventoryProgram, f: PageFilter): boolean {
  if (f.type && p.type !== f.type) return false;
  if (f.namespace && !(p.holders ?? []).some((h) => h.pod?.startsWith(`${f.namespace}/`))) return false;
  if (f.config && p.owner?.config !== f.config) return false;
  return true;
}

const link = (f: PageFilter, text: string): Html => {
  const q = new URLSearchParams(Object.entries(f).filter(([, v]) => v) as [string, string][]).toString();
  return html`<a href="/?${q}">${text}</a>`;
};

function filterForm(d: PageData): Html {
  const nodes = d.inventories.map((i) => i.name);
  const types = [...new Set(d.inventories.flatMap((i) => i.spec.programs.map((p) => p.type)))].sort();
  const select = (name: string, values: string[], current?: string) =>
    html`
      <select name="${name}"
        id="filter-${name}"><option value="">all ${name}s</option>${values.map((v) =>
          html`<option value="${v}" ${v === current ? "selected" : ""}>${v}</option>`
        )}</select>
    `;
  return html`<form method="get" action="/" id="filters">
${select("node", nodes, d.filter.node)}${select("type", types, d.filter.type)}
<input name="namespace" id="filter-namespace" placeholder="pod namespace" value="${d.filter.namespace ?? ""}">
<input name="config" id="filter-config" placeholder="config" value="${d.filter.config ?? ""}">
<button type="submit">Filter</button> <a href="/">clear</a></form>`;
}

function configTable(d: PageData): Html {
  return html`
    <h2>Configs</h2>
    <table id="configs"><tr><th>BpfProgramConfig</th><th>Type</th><th>Program</th>
    <th>Nodes</th><th>Loaded</th><th>Failing</th></tr>${d.configs.map((c) =>
      html`
        <tr>
          <td>${link({ config: c.name }, c.name)}</td>
          <td>${c.type}</td>
          <td>${c.program}</td>
          <td>${c.selected}</td>
          <td>${c.loaded}</td>
          <td>${c.failing}</td>
        </tr>
      `
    )}</table>
  `;
}

function configState(d: PageData): Html {
  const config = d.filter.config;
  if (!config) return html``;
  const rows = d.programs.filter((p) => p.config === config);
  return html`
    <h2>Config ${config} per node</h2>
    <table id="config-state"><tr><th>Node</th><th>BpfProgram</th>
    <th>Loaded</th><th>Reason</th><th>Message</th></tr>${rows.map((p) =>
      html`
        <tr>
          <td>${link({ node: p.node, config }, p.node)}</td>
          <td>${p.name}</td>
          <td>${p.loaded}</td>
          <td>${p.reason}</td>
          <td>${p.message}</td>
        </tr>
      `
    )}</table>
  `;
}

function owner(p: InventoryProgram): Html {
  if (p.owner?.config) {
    return html`config ${link({ config: p.owner.config }, p.owner.config)}
<span class="muted">(${p.owner.loadedBy})</span>`;
  }
  return html`${ownerOf(p)}`;
}

function programTable(d: PageData): Html {
  const rows = d.inventories
    .filter((i) => !d.filter.node || i.name === d.filter.node)
    .flatMap((i) => i.spec.programs.filter((p) => matches(p, d.filter)).map((p) => ({ node: i.name, p })));
  return html`
    <h2>Programs (${rows.length})</h2>
    <table id="programs"><tr><th>Node</th><th>ID</th><th>Name</th>
    <th>Type</th><th>bpfd</th><th>Attached</th><th>Owner</th></tr>${rows.map(({ node, p }) =>
      html`
        <tr class="${p.managed ? "managed" : "unmanaged"}" data-node="${node}" data-type="${p.type}">
          <td>${link({ node }, node)}</td>
          <td>${p.id}</td>
          <td>${p.name}</td>
          <td>${p.type}</td>
          <td>${p.managed ? "managed" : "not managed"}</td>
          <td>${p.attachments.map(describeAttachment).join("; ")}</td>
          <td>${owner(p)}</td>
        </tr>
      `
    )}</table>
  `;
}

function hookTables(d: PageData): Html {
  const nodes = d.inventories.filter((i) => !d.filter.node || i.name === d.filter.node);
  return html`<h2>Hooks</h2>${
    nodes.flatMap((i) =>
      i.spec.hooks.map((h) =>
        html`<h3>${i.name}: ${h.hook}${h.dispatcherId ? ` (dispatcher ${h.dispatcherId})` : ""}</h3>
<table class="hook"><tr><th>Position</th><th>Program</th><th>Name</th><th>Priority</th><th>Proceed on</th>
<th>bpfd</th></tr>${
          h.chain.map((e) =>
            html`
              <tr class="${e.managed ? "managed" : "unmanaged"}">
                <td>${e.position}</td>
                <td>${e.programId}</td>
                <td>${e.name}</td>
                <td>${e.priority}</td>
                <td>${e.proceedOn.join(", ")}</td>
                <td>${e.managed ? `link ${e.linkId}` : "not managed"}</td>
              </tr>
            `
          )
        }</table>`
      )
    )
  }`;
}

/** The whole page. */
export function inventoryPage(d: PageData): Html {
  const omitted = d.inventories.filter((i) => i.spec.omitted);
  return html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <title>bpfd inventory</title>
        <style>${STYLE}</style>
      </head>
      <body><h1>BPF programs in the cluster</h1>
    <p class="muted">${d.inventories.length} nodes, signed in as ${d.user}.
    ${omitted.map((i) =>
      html`
        Node ${i.name}: ${i.spec.omitted} programs not listed (object size limit).
      `
    )}</p>
    ${filterForm(d)}${configTable(d)}${configState(d)}${programTable(d)}${hookTables(d)}</body>
    </html>
  `;
}

/**
 * The login page: takes the token from the URL's fragment (never sent to a server, so never in a log),
 * posts it to /login, which sets the session cookie, then shows the inventory (or `next`, a local path):
 * `/login#token=<token>&next=/?node=node-a`.
 */
export const LOGIN_PAGE =
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bpfd login</title></head>
<body><p id="msg">Open this page as /login#token=&lt;a bearer token&gt; (kubectl create token ...).</p><script>
const p = new URLSearchParams(location.hash.slice(1)), t = p.get("token"), n = p.get("next") || "/";
const next = n.startsWith("/") && !n.startsWith("//") ? n : "/";
if (t) fetch("/login", { method: "POST", headers: { authorization: "Bearer " + t } }).then((r) => {
  if (r.ok) location.replace(next); else document.getElementById("msg").textContent = "refused: " + r.status;
});
</script></body></html>`;
