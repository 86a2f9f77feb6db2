/** Who may call the node API over TCP: token files, bearer tokens, verbs and verdicts, without a cluster. */
import assert from "node:assert/strict";
import {
  bearerToken,
  KubernetesAuthenticator,
  parseTokenFile,
  type ReviewApi,
  TokenFileAuthenticator,
  verbFor,
} from "../../../../runtime/auth/auth.ts";

const TOKEN = "0123456789abcdef-admin";

Deno.test("token file: kube-apiserver's format, uid and quoted groups optional, comments and blank lines skipped", () => {
  const text = [
    "# token,user,uid,groups",
    `${TOKEN},admin,1,"system:masters,ops"`,
    "",
    "  fedcba9876543210-viewer , viewer  ",
    "aaaaaaaaaaaaaaaa-noone,nobody,,",
  ].join("\n");
  assert.deepEqual(parseTokenFile(text), [
    { token: TOKEN, user: "admin", uid: "1", groups: ["system:masters", "ops"] },
    { token: "fedcba9876543210-viewer", user: "viewer", uid: undefined, groups: [] },
    { token: "aaaaaaaaaaaaaaaa-noone", user: "nobody", uid: undefined, groups: [] },
  ]);
});

Deno.test("token file: a line without a user, a token under 16 characters or a file without tokens is refused, naming the line", () => {
  assert.throws(
    () => parseTokenFile(`# x\n${TOKEN}`, "/etc/bpfd/tokens"),
    /^Error: \/etc\/bpfd\/tokens:2: needs at least token,user$/,
  );
  assert.throws(() => parseTokenFile("short,user"), /token file:1: the token is shorter than 16 characters/);
  assert.throws(() => parseTokenFile("# only a comment\n\n"), /token file: no tokens/);
});

Deno.test("token file: a listed token may call everything; no, unknown or almost-right tokens are 401", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, `${TOKEN},admin,1,"ops"\n`);
    const auth = await TokenFileAuthenticator.load(file);
    assert.deepEqual(await auth.check(TOKEN), {
      ok: true,
      identity: { user: "admin", via: "token" },
      groups: ["ops"],
    });
    for (const token of [undefined, "", `${TOKEN}x`, TOKEN.slice(0, -1)]) {
      const verdict = await auth.check(token);
      assert.equal(verdict.ok, false, String(token));
      assert.equal(!verdict.ok && verdict.status, 401);
    }
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("bearer tokens: only `Bearer <token>` (any case) carries one", () => {
  assert.equal(bearerToken("Bearer abc.def"), "abc.def");
  assert.equal(bearerToken("bearer   abc  "), "abc");
  assert.equal(bearerToken("Basic abc"), undefined);
  assert.equal(bearerToken("Bearer a b"), undefined);
  assert.equal(bearerToken(null), undefined);
});

Deno.test("verbs: reading (GET, list, get) needs get, every other function create", () => {
  assert.equal(verbFor("GET", undefined), "get");
  assert.equal(verbFor("HEAD", undefined), "get");
  assert.equal(verbFor("POST", "list"), "get");
  assert.equal(verbFor("POST", "get"), "get");
  for (
    const fn of ["load", "attach", "modify", "detach", "unload", "pull", "reconcile", "unknown", undefined]
  ) {
    assert.equal(verbFor("POST", fn), "create", String(fn));
  }
});

/** A ReviewApi that knows one user's token and grants it the given verbs; it counts the calls it gets. */
function fakeReviews(verbs: string[]): ReviewApi & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    tokenReview(token, audiences) {
      calls.push("token");
      if (token === "boom") return Promise.reject(new Error("API server down"));
      return Promise.resolve(
        token === TOKEN
          ? { authenticated: true, audiences, user: { username: "alice", uid: "u1", groups: ["dev"] } }
          : { authenticated: false, error: "invalid bearer token" },
      );
    },
    accessReview(attrs) {
      calls.push(`access ${attrs.verb} ${attrs.resource}/${attrs.subresource} ${attrs.name}`);
      return Promise.resolve({ allowed: verbs.includes(attrs.verb), reason: "RBAC" });
    },
  };
}

Deno.test("kubernetes auth: the API server vouches for the token, RBAC on nodes/bpfd of this node decides", async () => {
  const api = fakeReviews(["get"]);
  const auth = new KubernetesAuthenticator(api, { nodeName: "worker-1" });
  assert.deepEqual(await auth.check(TOKEN, "get"), {
    ok: true,
    identity: { user: "alice", via: "token" },
    groups: ["dev"],
  });
  const refused = await auth.check(TOKEN, "create");
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.status, 403);
  assert.match(
    !refused.ok ? refused.reason : "",
    /alice may not create nodes\/bpfd on node worker-1 \(RBAC\)/,
  );
  assert.deepEqual(api.calls, [
    "token",
    "access get nodes/bpfd worker-1",
    "access create nodes/bpfd worker-1",
  ]);
});

Deno.test("kubernetes auth: no, invalid or unreviewable tokens are 401 and never reach the access review", async () => {
  const api = fakeReviews(["get", "create"]);
  const auth = new KubernetesAuthenticator(api, { nodeName: "worker-1" });
  for (
    const [token, reason] of [[undefined, /no bearer token/], ["forged", /invalid bearer token/], [
      "boom",
      /API server down/,
    ]] as const
  ) {
    const verdict = await auth.check(token, "get");
    assert.equal(!verdict.ok && verdict.status, 401, String(token));
    assert.match(!verdict.ok ? verdict.reason : "", reason);
  }
  assert.ok(!api.calls.some((c) => c.startsWith("access")));
});

Deno.test("kubernetes auth: verdicts are reused for cacheSeconds, and not at all with 0", async () => {
  const cached = fakeReviews(["get"]);
  const auth = new KubernetesAuthenticator(cached, { nodeName: "n", cacheSeconds: 10 });
  await auth.check(TOKEN, "get");
  await auth.check(TOKEN, "get");
  assert.deepEqual(cached.calls, ["token", "access get nodes/bpfd n"]);
  const uncached = fakeReviews(["get"]);
  const noCache = new KubernetesAuthenticator(uncached, { nodeName: "n", cacheSeconds: 0 });
  await noCache.check(TOKEN, "get");
  await noCache.check(TOKEN, "get");
  assert.equal(uncached.calls.length, 4);
});

type Access = Parameters<ReviewApi["accessReview"]>[0];

/** A ReviewApi that knows one good token, bound to `audience`, and counts what it is asked. */
function fakeApi(audience = "bpfd.io/node/node-a") {
  const reviews: Array<{ token: string; audiences: string[] }> = [];
  const accesses: Access[] = [];
  let failing = false;
  const api: ReviewApi = {
    async tokenReview(token, audiences) {
      reviews.push({ token, audiences });
      await new Promise((r) => setTimeout(r, 1));
      if (failing) throw new Error("connection refused");
      if (token !== "good-token") return { authenticated: false, error: "invalid bearer token" };
      return {
        authenticated: audiences.includes(audience),
        audiences: audiences.filter((a) => a === audience),
        user: {
          username: "system:serviceaccount:bpfd:bpfd-controller",
          uid: "u1",
          groups: ["system:serviceaccounts"],
          extra: { "authentication.kubernetes.io/pod-name": ["controller-0"] },
        },
      };
    },
    accessReview(attrs) {
      accesses.push(attrs);
      return Promise.resolve({ allowed: true });
    },
  };
  return { api, reviews, accesses, fail: (on: boolean) => failing = on };
}

Deno.test("kubernetes auth: the TokenReview names the node's audience, the SubjectAccessReview the user's extra", async () => {
  const fake = fakeApi();
  const auth = new KubernetesAuthenticator(fake.api, { nodeName: "node-a" });
  const verdict = await auth.check("good-token", "create");
  assert.equal(verdict.ok, true);
  assert.deepEqual(fake.reviews[0].audiences, ["bpfd.io/node/node-a"]);
  assert.deepEqual(fake.accesses[0].extra, { "authentication.kubernetes.io/pod-name": ["controller-0"] });
  assert.equal(fake.accesses[0].name, "node-a");
  assert.equal(fake.accesses[0].subresource, "bpfd");
});

Deno.test("kubernetes auth: a token bound to another node's audience is refused (401)", async () => {
  const fake = fakeApi("bpfd.io/node/node-a");
  const auth = new KubernetesAuthenticator(fake.api, { nodeName: "node-b" });
  const verdict = await auth.check("good-token", "get");
  assert.equal(verdict.ok, false);
  assert.equal(!verdict.ok && verdict.status, 401);
  assert.match(!verdict.ok ? verdict.reason : "", /not valid for bpfd\.io\/node\/node-b/);
  assert.equal(fake.accesses.length, 0);
});

Deno.test("kubernetes auth: a review that does not confirm the audience is refused", async () => {
  const api: ReviewApi = {
    // An API server that ignores spec.audiences answers without status.audiences.
    tokenReview: () => Promise.resolve({ authenticated: true, user: { username: "someone" } }),
    accessReview: () => Promise.resolve({ allowed: true }),
  };
  const verdict = await new KubernetesAuthenticator(api, { nodeName: "node-a" }).check("t", "get");
  assert.equal(!verdict.ok && verdict.status, 401);
});

Deno.test("kubernetes auth: 1,000 distinct bad tokens cost 1,000 reviews, then none within the window", async () => {
  const fake = fakeApi();
  const auth = new KubernetesAuthenticator(fake.api, { nodeName: "node-a", negativeCacheSeconds: 10 });
  const tokens = Array.from({ length: 1000 }, (_, i) => `bad-token-${i}`);
  for (const v of await Promise.all(tokens.map((t) => auth.check(t, "create")))) {
    assert.equal(!v.ok && v.status, 401);
  }
  assert.equal(fake.reviews.length, 1000);
  await Promise.all(tokens.map((t) => auth.check(t, "create")));
  assert.equal(fake.reviews.length, 1000, "a refused token was reviewed again within the window");
});

Deno.test("kubernetes auth: the same bad token 1,000 times at once costs one review", async () => {
  const fake = fakeApi();
  const auth = new KubernetesAuthenticator(fake.api, { nodeName: "node-a" });
  const verdicts = await Promise.all(Array.from({ length: 1000 }, () => auth.check("bad-token", "create")));
  assert.ok(verdicts.every((v) => !v.ok && v.status === 401));
  assert.equal(fake.reviews.length, 1);
});

Deno.test("kubernetes auth: the refusal window ends; API server errors are not remembered", async () => {
  const fake = fakeApi();
  const auth = new KubernetesAuthenticator(fake.api, { nodeName: "node-a", negativeCacheSeconds: 0.05 });
  await auth.check("bad-token", "get");
  await auth.check("bad-token", "get");
  assert.equal(fake.reviews.length, 1);
  await new Promise((r) => setTimeout(r, 80));
  await auth.check("bad-token", "get");
  assert.equal(fake.reviews.length, 2);
  fake.fail(true);
  assert.equal((await auth.check("good-token", "get")).ok, false);
  fake.fail(false);
  assert.equal((await auth.check("good-token", "get")).ok, true, "an error was cached as a refusal");
});

Deno.test("kubernetes auth: the refusal cache is bounded, oldest out first", async () => {
  const fake = fakeApi();
  const auth = new KubernetesAuthenticator(fake.api, { nodeName: "node-a", maxEntries: 10 });
  for (let i = 0; i < 20; i++) await auth.check(`bad-${i}`, "get");
  await auth.check("bad-19", "get");
  assert.equal(fake.reviews.length, 20, "the newest is still remembered");
  await auth.check("bad-0", "get");
  assert.equal(fake.reviews.length, 21, "the oldest was let go");
});
