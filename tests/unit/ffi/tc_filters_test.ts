/**
 * Parsing tc dumps recorded from the kernel (6.18): in a network namespace, veth d0 (ifindex 3) with an HTB
 * qdisc `1:`, classes 1:1 and 1:10 and a clsact qdisc, its peer d1 (ifindex 2) with noqueue; a cls_bpf
 * filter (`tc filter add dev d0 parent 1:10 prio 4 bpf obj tc_counter.bpf.o sec tc da`, program 614379).
 */
import assert from "node:assert/strict";
import { Rtnl, TC_H } from "../../../ffi/abi.ts";
import {
  bpfFiltersOf,
  parseTcMessages,
  tcHandleName,
  type TcMessage,
  tcParents,
} from "../../../ffi/tc_filters.ts";

/** RTM_GETQDISC dump of the whole namespace. */
const QDISCS = bytes(
  "lAAAACQAAgABAAAARkMAAAAAAAACAAAAAAAAAP////8CAAAADAABAG5vcXVldWUABQAMAAAAAAAwAAcAFAABAAAAAAAAAAAA" +
    "AAAAAAAAAAAYAAMAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" +
    "AAAAALQAAAAkAAIAAQAAAEZDAAAAAAAAAwAAAAAAAQD/////AwAAAAgAAQBodGIAJAACABgAAgARAAMACgAAABAAAAAAAAAA" +
    "AQAAAAgABQDoAwAABQAMAAAAAAAwAAcAFAABAEoCAAAAAAAABwAAAAAAAAAYAAMAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAMA" +
    "SgIAAAAAAAAHAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAJgAAAAkAAIAAQAAAEZDAAAAAAAAAwAAAAAA///x////" +
    "AQAAAAsAAQBjbHNhY3QAAAQAAgAFAAwAAAAAADAABwAUAAEA8AEAAAAAAAAGAAAAAAAAABgAAwAAAAAAAAAAAAAAAAAAAAAA" +
    "AAAAACwAAwDwAQAAAAAAAAYAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAFAAAAAMAAgABAAAARkMAAAAAAAA=",
);
/** RTM_GETTCLASS dump of d0. */
const CLASSES = bytes(
  "7AAAACgAAgACAAAARkMAAAAAAAADAAAAEAABAAEAAQAAAAAACAABAGh0YgA0AAIAMAABAAABAAAAAAAAaIkJAAABAAAAAAAA" +
    "aIkJAECcAABAnAAAJPQAAAAAAAAAAAAASAAHABQAAQDwAQAAAAAAAAYAAAAAAAAAGAADAAAAAAAAAAAAAAAAAAAAAAAAAAAA" +
    "GAAEAAYAAAAAAAAAAAAAAGqVAABqlQAALAADAPABAAAAAAAABgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAYAAQA" +
    "BgAAAAAAAAAAAAAAapUAAGqVAADsAAAAKAACAAIAAABGQwAAAAAAAAMAAAABAAEA/////wAAAAAIAAEAaHRiADQAAgAwAAEA" +
    "AAEAAAAAAADQEhMAAAEAAAAAAADQEhMAIE4AACBOAABI6AEABwAAAAAAAABIAAcAFAABAPABAAAAAAAABgAAAAAAAAAYAAMA" +
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAYAAQAAAAAAAAAAAAAAAAAtUoAALVKAAAsAAMA8AEAAAAAAAAGAAAAAAAAAAAAAAAAAAAA" +
    "AAAAAAAAAAAAAAAAAAAAABgABAAAAAAAAAAAAAAAAAC1SgAAtUoAABQAAAADAAIAAgAAAEZDAAAAAAAA",
);
/** RTM_GETTFILTER dump of d0, parent 1:10. */
const FILTERS = bytes(
  "NAAAACwAAgADAAAARkMAAAAAAAADAAAAAAAAABAAAQAAAwQACAABAGJwZgAIAAsAAAAAAHgAAAAsAAIAAwAAAEZDAAAAAAAA" +
    "AwAAAAEAAAAQAAEAAAMEAAgAAQBicGYACAALAAAAAABEAAIAGgAHAHRjX2NvdW50ZXIuYnBmLm86W3RjXQAAAAgACwDrXwkA" +
    "DAAKADnb8GTenFKOCAAIAAEAAAAIAAkACAAAABQAAAADAAIAAwAAAEZDAAAAAAAA",
);

function bytes(base64: string): Uint8Array {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

Deno.test("tc dumps: a qdisc dump of the namespace is read per interface, with each qdisc's kind and handle", () => {
  const messages = parseTcMessages(QDISCS);
  assert.equal(messages.at(-1)?.type, Rtnl.NLMSG_DONE, "the dump ends with NLMSG_DONE");
  const qdiscs = messages.filter((m) => m.type === Rtnl.RTM_NEWQDISC);
  assert.deepEqual(qdiscs.map((q) => [q.ifindex, q.kind, tcHandleName(q.handle), tcHandleName(q.parent)]), [
    [2, "noqueue", "0:", "root"],
    [3, "htb", "1:", "root"],
    [3, "clsact", "ffff:", "ffff:fff1"],
  ]);
});

Deno.test("tc dumps: filters are asked for on every qdisc handle and class id, clsact's ingress and egress", () => {
  const qdiscs = parseTcMessages(QDISCS).filter((m) => m.type === Rtnl.RTM_NEWQDISC && m.ifindex === 3);
  const classes = parseTcMessages(CLASSES).filter((m) => m.type === Rtnl.RTM_NEWTCLASS);
  assert.deepEqual(classes.map((c) => tcHandleName(c.handle)).sort(), ["1:1", "1:10"]);
  const parents = tcParents(qdiscs, classes);
  assert.deepEqual(parents.slice(0, 3), [
    { id: 0x10000, name: "1:" },
    { id: TC_H.INGRESS, name: "ingress" },
    { id: TC_H.EGRESS, name: "egress" },
  ], "qdiscs first, so their filters survive the cap");
  assert.deepEqual(parents.slice(3), [{ id: 0x10001, name: "1:1" }, { id: 0x10010, name: "1:10" }], "by id");
});

Deno.test("tc dumps: a cls_bpf filter on class 1:10 gives its program, priority, handle and tc's name", () => {
  assert.deepEqual(bpfFiltersOf(parseTcMessages(FILTERS), "1:10"), [{
    parent: "1:10",
    programId: 614379,
    name: "tc_counter.bpf.o:[tc]",
    handle: 1,
    priority: 4,
    chain: 0,
    directAction: true,
  }]);
  assert.deepEqual(bpfFiltersOf(parseTcMessages(QDISCS), "root"), [], "qdiscs are no filters");
});

Deno.test("tc dumps: a message cut short is left out, without a throw", () => {
  const all = parseTcMessages(FILTERS);
  const whole = bpfFiltersOf(all, "1:10");
  for (let cut = 0; cut < FILTERS.length; cut += 7) {
    const some = parseTcMessages(FILTERS.subarray(0, cut));
    assert.ok(some.length < all.length, `cut at ${cut}`);
    const filters = bpfFiltersOf(some, "1:10");
    assert.ok(filters.length === 0 || (filters.length === 1 && cut >= FILTERS.length - 20), `cut at ${cut}`);
    assert.deepEqual(filters, whole.slice(0, filters.length));
  }
});

Deno.test("tc handles print as tc prints them", () => {
  assert.deepEqual(
    [TC_H.ROOT, TC_H.INGRESS, TC_H.EGRESS, 0x10000, 0x10010, 0xabcd0001].map(tcHandleName),
    ["root", "ingress", "egress", "1:", "1:10", "abcd:1"],
  );
});

Deno.test("tc parents: a root qdisc without a handle is asked as root, its unnamed children and the ingress qdisc's egress are not", () => {
  const q = (kind: string, handle: number, parent: number): TcMessage => ({
    type: Rtnl.RTM_NEWQDISC,
    seq: 1,
    ifindex: 1,
    handle,
    parent,
    info: 0,
    kind,
  });
  assert.deepEqual(
    tcParents([q("mq", 0, TC_H.ROOT), q("fq_codel", 0, 1), q("ingress", 0xffff0000, 0xfffffff1)], []),
    [{ id: 0, name: "root" }, { id: TC_H.INGRESS, name: "ingress" }],
  );
});
