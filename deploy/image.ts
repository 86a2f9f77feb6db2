/**
 * `deno task image [--ref R] [--out FILE]` builds bpfd's container image without docker, from Debian's
 * packages (deploy/image.sh: an mmdebstrap minbase rootfs, cached per package list, plus one layer with the
 * project, the pinned Deno and its module cache), as an OCI archive that `ctr images import`, `skopeo copy`
 * and `podman load` read. The image carries group `bpfd` at GID {@link BPFD_GID}. Needs root and the
 * packages tests/cluster/setup.sh installs. An unchanged repository leaves the archive as it is.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The tag `deno task image` and `deno task cluster up --deploy` use. */
export const IMAGE_REF = "localhost/bpfd:dev";

/** The GID of group `bpfd` in the image: map pins belong to it; application pods add it to their groups. */
export const BPFD_GID = 2000;

/** Where images and the Debian rootfs are cached (outside the repository). */
export const IMAGE_CACHE = Deno.env.get("BPFD_IMAGE_CACHE") ?? "/var/cache/bpfd/image";

/** The archive `deno task image` writes by default. */
export const IMAGE_ARCHIVE = `${IMAGE_CACHE}/bpfd.tar`;

const SCRIPT = new URL("./image.sh", import.meta.url).pathname;

async function script(args: string[]): Promise<void> {
  const r = await new Deno.Command("bash", {
    args: [SCRIPT, ...args],
    env: { BPFD_IMAGE_CACHE: IMAGE_CACHE, BPFD_GID: String(BPFD_GID) },
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (r.code !== 0) throw new Error(`deploy/image.sh ${args[0]} failed (exit ${r.code})`);
}

/** Builds bpfd's image as an oci-archive `out` tagged `ref` (kept as it is when nothing changed). */
export async function buildImage(ref = IMAGE_REF, out = IMAGE_ARCHIVE): Promise<string> {
  await script(["bpfd", out, ref]);
  return out;
}

/** Builds busybox-static images: `dir`/pause.tar (sleeps forever) and `dir`/busybox.tar (/bin/sh). */
export async function buildBusyboxImages(dir: string, pauseRef: string, busyboxRef: string): Promise<void> {
  await script(["busybox", dir, pauseRef, busyboxRef]);
}

const USAGE = `usage: deno task image [--ref R] [--out FILE]

Builds bpfd's image (default ${IMAGE_REF}) from Debian packages with mmdebstrap and umoci, as an OCI
archive (default ${IMAGE_ARCHIVE}). Load it with
  ctr -n k8s.io images import FILE     (containerd)
  skopeo copy oci-archive:FILE docker://REGISTRY/bpfd:TAG
The image's group bpfd has GID ${BPFD_GID}.`;

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      ref: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  try {
    const out = await buildImage(values.ref ?? IMAGE_REF, values.out ?? IMAGE_ARCHIVE);
    console.log(`${values.ref ?? IMAGE_REF} ${out}`);
  } catch (e) {
    console.error(`image: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
