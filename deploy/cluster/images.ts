/**
 * Images in the node's containerd: oci-archives loaded once per digest.
 * @module
 */
import { must } from "../../lib/command.ts";
import { ctr } from "./layout.ts";

/** The manifest digest an oci-archive's index names. */
async function archiveDigest(archive: string): Promise<string> {
  const index = JSON.parse(await must("tar", ["-xOf", archive, "index.json"]));
  return index.manifests[0].digest;
}

/** Loads an oci-archive into the node's containerd (namespace k8s.io) unless that digest is there. */
export async function importImage(archive: string, ref: string): Promise<boolean> {
  const want = await archiveDigest(archive);
  const have = await ctr(["-n", "k8s.io", "images", "ls", `name==${ref}`]);
  if (have.code === 0 && have.stdout.includes(want)) return false;
  const r = await ctr(["-n", "k8s.io", "images", "import", archive]);
  if (r.code !== 0) throw new Error(`ctr images import ${archive}: ${r.stderr.trim()}`);
  return true;
}
