import assert from "node:assert/strict";
import { KubernetesAuthenticator, type ReviewApi } from "../../../../runtime/auth/auth.ts";

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
