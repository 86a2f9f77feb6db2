/**
 * TokenReview and SubjectAccessReview through runtime/kube_fetch.ts, with the node runtime's own
 * credentials: a kubeconfig file, else $KUBECONFIG or ~/.kube/config, else the pod's ServiceAccount.
 *
 * @example
 * ```ts
 * const api = await kubeReviewApi(config.auth?.kubeconfig);
 * const r = await api.tokenReview(token, ["bpfd.io/node/node-a"]);
 * ```
 * @module
 */
import { KubeFetch } from "../kube_fetch.ts";
import type { ReviewApi, ReviewedUser } from "./auth.ts";

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: ReviewedUser;
  audiences?: string[];
  error?: string;
}

interface AccessReviewStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

/** A ReviewApi on the cluster of `kubeconfig` (or $KUBECONFIG, ~/.kube/config, in-cluster). */
export async function kubeReviewApi(kubeconfig?: string): Promise<ReviewApi> {
  const kube = await KubeFetch.load(kubeconfig);
  return {
    async tokenReview(token, audiences) {
      const r = await kube.request<{ status?: TokenReviewStatus }>(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, audiences } },
      );
      return {
        authenticated: !!r.status?.authenticated,
        user: r.status?.user,
        audiences: r.status?.audiences,
        error: r.status?.error,
      };
    },
    async accessReview(a) {
      const r = await kube.request<{ status?: AccessReviewStatus }>(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
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
      );
      return {
        allowed: !!r.status?.allowed,
        denied: r.status?.denied,
        reason: r.status?.reason,
        evaluationError: r.status?.evaluationError,
      };
    },
  };
}
