/**
 * TokenReview and SubjectAccessReview through `@kubernetes/client-node`, with the node runtime's own
 * credentials: in a pod its ServiceAccount (in-cluster config), elsewhere a kubeconfig file. The client
 * is imported only when Kubernetes authentication is configured (it costs the runtime start-up time and
 * memory otherwise).
 *
 * @module
 */
import { kubeClient } from "../../lib/kube_client.ts";
import type { ReviewApi } from "./auth.ts";

/** A ReviewApi on the cluster of `kubeconfig` (or $KUBECONFIG, in-cluster, ~/.kube/config). */
export async function kubeReviewApi(kubeconfig?: string): Promise<ReviewApi> {
  const k8s = await kubeClient();
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const authn = kc.makeApiClient(k8s.AuthenticationV1Api);
  const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  return {
    async tokenReview(token, audiences) {
      const r = await authn.createTokenReview({ body: { spec: { token, audiences } } });
      return {
        authenticated: !!r.status?.authenticated,
        user: r.status?.user,
        audiences: r.status?.audiences,
        error: r.status?.error,
      };
    },
    async accessReview(a) {
      const r = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: a.user,
            uid: a.uid,
            groups: a.groups,
            extra: a.extra,
            resourceAttributes: {
              verb: a.verb,
              group: a.group,
              resource: a.resource,
              subresource: a.subresource,
              name: a.name,
            },
          },
        },
      });
      return {
        allowed: !!r.status?.allowed,
        denied: r.status?.denied,
        reason: r.status?.reason,
        evaluationError: r.status?.evaluationError,
      };
    },
  };
}
