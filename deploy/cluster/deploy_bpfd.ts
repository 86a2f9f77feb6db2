/**
 * `up --deploy`: bpfd's image built if missing and loaded into the node, bpfd deployed with it.
 * @module
 */
import { buildImage, IMAGE_ARCHIVE, IMAGE_REF } from "../image.ts";
import { importImage } from "./images.ts";
import { KUBECONFIG, kubectl, KUBELET_DIR } from "./layout.ts";
import { exists } from "./processes.ts";

/** bpfd's image (built if missing) loaded into the node, bpfd deployed with it, its pods waited for. */
export async function deployBpfd(log: (line: string) => void): Promise<void> {
  if (!(await exists(IMAGE_ARCHIVE))) {
    log(`building ${IMAGE_REF} (deno task image)`);
    await buildImage(IMAGE_REF, IMAGE_ARCHIVE);
  }
  const loaded = await importImage(IMAGE_ARCHIVE, IMAGE_REF);
  if (loaded) log(`loaded ${IMAGE_REF} into the node`);
  // Loaded here only: client-node's import prints a warning `up` alone has no reason to show.
  const k8s = await import("@kubernetes/client-node");
  const { deploy } = await import("../deploy.ts");
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  const changes = await deploy({ kc, image: IMAGE_REF, imagePullPolicy: "Never", kubeletDir: KUBELET_DIR });
  const changed = changes.filter((c) => c.action !== "unchanged").length;
  log(`deployed bpfd (${changed} object(s) created or changed)`);
  const workloads = ["daemonset/bpfd-node", "deployment/bpfd-controller"];
  const rolled = changes.some((c) =>
    ["DaemonSet", "Deployment"].includes(c.kind) && c.action !== "unchanged"
  );
  if (loaded && !rolled) {
    // Same tag, new content: pods that run the old image are replaced.
    const r = await kubectl(["-n", "bpfd", "rollout", "restart", ...workloads]);
    if (r.code !== 0) throw new Error(`kubectl rollout restart: ${r.stderr.trim()}`);
    log("restarted bpfd's pods on the new image");
  }
  for (const w of workloads) {
    const r = await kubectl(["-n", "bpfd", "rollout", "status", w, "--timeout=180s"]);
    if (r.code !== 0) throw new Error(`${w} did not become ready: ${(r.stderr || r.stdout).trim()}`);
  }
  log("bpfd's node and controller pods are Ready");
}
