import assert from "node:assert/strict";
import { KubeFetch } from "../../../runtime/kube_fetch.ts";
import { type KubeObject, ListWatch, watchEvents } from "../../../runtime/kube_watch.ts";

const enc = new TextEncoder();

/** A body that delivers `chunks` (strings or raw bytes) one by one, then ends (or stays open). */
function body(chunks: Array<string | Uint8Array>, open = false): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async start(c) {
      for (const chunk of chunks) {
        c.enqueue(typeof chunk === "string" ? enc.encode(chunk) : chunk);
        await new Promise((r) => setTimeout(r, 5));
      }
      if (!open) c.close();
    },
  });
}

const obj = (name: string, rv: string) => ({ metadata: { name, resourceVersion: rv } });
const line = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;

async function collect(stream: ReadableStream<Uint8Array>): Promise<unknown[]> {
  const out = [];
  for await (const ev of watchEvents(stream)) out.push(ev);
  return out;
}

Deno.test("watch events: one per line, lines and UTF-8 characters split across chunks, blank lines skipped", async () => {
  const text = line("ADDED", obj("grün", "1")) + "\n" + line("DELETED", obj("b", "2"));
  const bytes = enc.encode(text);
  const umlaut = enc.encode(text.slice(0, text.indexOf("ü"))).length + 1; // inside the two bytes of ü
  const newline = bytes.indexOf(10) + 1;
  const cuts = [0, 3, 20, umlaut, newline, newline + 1, bytes.length - 2, bytes.length];
  const chunks = cuts.slice(1).map((end, i) => bytes.slice(cuts[i], end));
  assert.deepEqual(await collect(body(chunks)), [
    { type: "ADDED", object: obj("grün", "1") },
    { type: "DELETED", object: obj("b", "2") },
  ]);
  assert.deepEqual(await collect(body([line("BOOKMARK", obj("", "3")).trim()])), [
    { type: "BOOKMARK", object: obj("", "3") },
  ], "a last line without its newline");
  await assert.rejects(collect(body([line("ADDED", obj("a", "1")), '{"type":"MOD'])), SyntaxError);
});

Deno.test("watch events: an abort ends the reading of an answer that stays open", async () => {
  const stop = new AbortController();
  const events = watchEvents(body([line("ADDED", obj("a", "1"))], true), stop.signal);
  assert.equal((await events.next()).value?.type, "ADDED");
  const pending = events.next();
  stop.abort();
  await assert.rejects(pending, { name: "AbortError" });
});

/**
 * A fake API server on loopback (plain HTTP): each list answers the next of `lists` (the last one again
 * when they run out), each watch streams the next of `watches` (then a stream that stays open); every
 * request's query is recorded.
 */
function fakeApi(lists: Array<() => Response>, watches: Array<() => ReadableStream<Uint8Array>>) {
  const requests: URLSearchParams[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const query = new URL(req.url).searchParams;
    requests.push(query);
    if (query.get("watch") !== "1") return (lists.length > 1 ? lists.shift()! : lists[0])();
    const next = watches.shift();
    return new Response(next ? next() : body([], true));
  });
  const kube = new KubeFetch({ server: `http://127.0.0.1:${server.addr.port}` });
  return {
    kube,
    requests,
    async close() {
      kube.close();
      await server.shutdown();
    },
  };
}

const list = (rv: string, ...items: KubeObject[]) => () =>
  Response.json({ kind: "List", metadata: { resourceVersion: rv }, items });
const refuse = () => Response.json({ kind: "Status", code: 503, message: "not ready" }, { status: 503 });

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const names = (w: ListWatch) => w.list().map((o) => o.metadata?.name).sort();

Deno.test("list-watch: starts on a list that succeeded, watches from its version, again from the last one, lists again after ERROR or a broken stream", async () => {
  const api = fakeApi(
    [refuse, list("10", obj("a", "5")), list("20", obj("b", "18"), obj("c", "19"))],
    [
      () =>
        body([
          line("ADDED", obj("b", "11")).slice(0, 9),
          line("ADDED", obj("b", "11")).slice(9),
          line("BOOKMARK", obj("", "13")),
        ]),
      () =>
        body([
          line("DELETED", obj("a", "14")),
          line("ERROR", { kind: "Status", code: 410, message: "too old" }),
        ]),
      () =>
        // the connection breaks in the middle of an event
        new ReadableStream({
          start(c) {
            c.enqueue(enc.encode('{"type":"ADD'));
            c.error(new Error("reset"));
          },
        }),
    ],
  );
  const errors: string[] = [];
  let changes = 0;
  const w = new ListWatch(api.kube, "/apis/x/v1/things", {
    timeoutSeconds: 7,
    onChange: () => changes++,
    onError: (err) => errors.push(String(err)),
  });
  try {
    const started = Date.now();
    await w.start();
    assert.ok(Date.now() - started >= 900, "the failed list was retried a second later");
    assert.deepEqual(names(w), ["a"]);
    assert.match(errors[0], /503 not ready/);
    await until("the relist after ERROR", () => names(w).join() === "b,c");
    const watches = api.requests.filter((q) => q.get("watch") === "1");
    assert.deepEqual(watches.slice(0, 2).map((q) => q.get("resourceVersion")), ["10", "13"]);
    assert.equal(watches[0].get("allowWatchBookmarks"), "true");
    assert.equal(watches[0].get("timeoutSeconds"), "7");
    assert.match(errors[1], /410 too old/);
    assert.equal(changes, 3, "ADDED b, DELETED a, the relist (not the first list, not the BOOKMARK)");
    await until(
      "a watch after the broken one",
      () => api.requests.filter((q) => q.get("watch")).length === 4,
    );
    assert.deepEqual(api.requests.slice(-3).map((q) => q.get("resourceVersion")), ["20", null, "20"]);
    assert.equal(errors.length, 3, "the broken stream was reported");
    assert.equal(changes, 3, "a relist that found nothing new changed nothing");
  } finally {
    await w.stop();
    await api.close();
  }
  assert.equal(errors.length, 3, "stop() is not an error");
});

Deno.test("list-watch: stop() ends an open watch, and a start whose lists keep failing", async () => {
  const api = fakeApi([refuse], []);
  const w = new ListWatch(api.kube, "/apis/x/v1/things");
  const starting = w.start();
  await until("a few lists", () => api.requests.length >= 2);
  await w.stop();
  await starting; // resolves without a list
  assert.deepEqual(w.list(), []);
  await api.close();

  const open = fakeApi([list("1", obj("a", "1"))], []); // the watch never ends by itself
  const v = new ListWatch(open.kube, "/apis/x/v1/things");
  await v.start();
  await until("the watch", () => open.requests.length === 2);
  const t = Date.now();
  await v.stop();
  assert.ok(Date.now() - t < 1000, "stop() aborted the request");
  await open.close();
});
