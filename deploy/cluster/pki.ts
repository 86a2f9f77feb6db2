/**
 * The cluster's PKI: a CA, the components' certificates (EC P-256, reissued when their subject changes),
 * their kubeconfigs and the service-account key pair, all under the cluster's pki directory.
 * @module
 */
import { newEcKeyArgs, openssl } from "../../lib/pki.ts";
import { API_PORT, CLUSTER_DIR, KUBECONFIG, NODE_IP, NODE_NAME, pki, SERVICE_IP } from "./layout.ts";
import { exists } from "./processes.ts";

async function cert(name: string, subject: string, usage: string, sans = ""): Promise<void> {
  const issued = `${subject} ${usage} ${sans}`;
  const had = await Deno.readTextFile(`${pki}/${name}.issued`).catch(() => undefined);
  if (had === issued && (await exists(`${pki}/${name}.crt`))) return;
  await openssl([
    "req",
    "-new",
    ...newEcKeyArgs(`${pki}/${name}.key`),
    "-out",
    `${pki}/${name}.csr`,
    "-subj",
    subject,
  ]);
  const ext = [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${usage}`,
    ...(sans ? [`subjectAltName=${sans}`] : []),
  ];
  await Deno.writeTextFile(`${pki}/${name}.ext`, ext.join("\n") + "\n");
  await openssl([
    "x509",
    "-req",
    "-in",
    `${pki}/${name}.csr`,
    "-CA",
    `${pki}/ca.crt`,
    "-CAkey",
    `${pki}/ca.key`,
    "-CAcreateserial",
    "-out",
    `${pki}/${name}.crt`,
    "-days",
    "3650",
    "-extfile",
    `${pki}/${name}.ext`,
  ]);
  await Deno.remove(`${pki}/${name}.csr`);
  await Deno.remove(`${pki}/${name}.ext`);
  await Deno.writeTextFile(`${pki}/${name}.issued`, issued);
}

function kubeconfigText(server: string, user: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: bpfd
  cluster:
    certificate-authority: ${pki}/ca.crt
    server: ${server}
users:
- name: ${user}
  user:
    client-certificate: ${pki}/${user}.crt
    client-key: ${pki}/${user}.key
contexts:
- name: bpfd
  context: {cluster: bpfd, user: ${user}}
current-context: bpfd
`;
}

/** A CA, the components' certificates (EC P-256) and kubeconfigs, the service-account key pair. */
export async function makePki(): Promise<void> {
  await Deno.mkdir(pki, { recursive: true, mode: 0o700 });
  if (!(await exists(`${pki}/ca.crt`))) {
    await openssl([
      "req",
      "-x509",
      ...newEcKeyArgs(`${pki}/ca.key`),
      "-out",
      `${pki}/ca.crt`,
      "-days",
      "3650",
      "-subj",
      "/CN=bpfd-cluster-ca",
    ]);
  }
  const apiSans = [
    `IP:${NODE_IP}`,
    "IP:127.0.0.1",
    `IP:${SERVICE_IP}`,
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
  ];
  await cert("apiserver", "/CN=kube-apiserver", "serverAuth", apiSans.join(","));
  await cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", "clientAuth");
  // The cluster's admin is bpfd's admin too (group bpfd-admins of the default BpfPolicy: any priority,
  // bytecode by path), as a cluster's operator would be.
  await cert("admin", "/O=system:masters/O=bpfd-admins/CN=bpfd-cluster-admin", "clientAuth");
  await cert("kcm", "/CN=system:kube-controller-manager", "clientAuth");
  await cert("scheduler", "/CN=system:kube-scheduler", "clientAuth");
  await cert("kubelet", `/O=system:nodes/CN=system:node:${NODE_NAME}`, "clientAuth");
  await cert("kubelet-serving", `/CN=${NODE_NAME}`, "serverAuth", `IP:${NODE_IP},DNS:${NODE_NAME}`);
  if (!(await exists(`${pki}/sa.pub`))) {
    await openssl(["genrsa", "-out", `${pki}/sa.key`, "2048"]);
    await openssl(["rsa", "-in", `${pki}/sa.key`, "-pubout", "-out", `${pki}/sa.pub`]);
  }
  const inNode = `https://${NODE_IP}:6443`;
  await Deno.writeTextFile(KUBECONFIG, kubeconfigText(`https://127.0.0.1:${API_PORT}`, "admin"));
  await Deno.writeTextFile(`${CLUSTER_DIR}/node-admin.kubeconfig`, kubeconfigText(inNode, "admin"));
  for (const c of ["kcm", "scheduler", "kubelet"]) {
    await Deno.writeTextFile(`${CLUSTER_DIR}/${c}.kubeconfig`, kubeconfigText(inNode, c));
  }
}
