/** Container ids as pods' statuses give them. */
import assert from "node:assert/strict";
import { bareContainerId } from "../../../kernel/containers.ts";

Deno.test("container ids: the runtime prefix goes, anything but a hex id is refused", () => {
  const id = "4f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
  assert.equal(bareContainerId(`containerd://${id}`), id);
  assert.equal(bareContainerId(`cri-o://${id}`), id);
  assert.equal(bareContainerId(id), id);
  assert.equal(bareContainerId("containerd://../../etc"), undefined);
  assert.equal(bareContainerId("containerd://abc"), undefined);
});
