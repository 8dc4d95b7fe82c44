/* webhook.h - `gpupool webhook`: the mutating admission webhook that routes
 * GPU pods to gpupool's scheduler and refuses GPU requests that can never
 * be placed.
 *
 * Two halves.  gp_webhook_review is pure: one AdmissionReview
 * (admission.k8s.io/v1) in, the answer out, no I/O; the unit tests drive
 * it with the fixture files of tests/fixtures/webhook/.  gp_webhook_run is
 * the daemon: HTTPS (TLS 1.2 or later) on libevent, POST /mutate and
 * GET /healthz, the certificate and key re-read when their files change
 * and on SIGHUP.
 *
 * What a review decides, for a Pod CREATE whose containers (init
 * containers too) ask for gpupool's or HAMi's GPU resources (docs/sched.md,
 * "Resource names"), read with the extender's own parser (sched/pod.h) so
 * the two never disagree:
 *   - spec.schedulerName is set to gpupool's scheduler, unless the pod
 *     names another non-default scheduler (then it is left, with a
 *     warning in the AdmissionResponse);
 *   - a container asking for memory or cores without a vGPU count gets a
 *     count of 1 (gpupool.io/vgpu, or nvidia.com/gpu for HAMi's names) in
 *     its limits, and in its requests if it gave GPU requests there;
 *   - what can never be placed is refused (allowed: false, code 422, the
 *     reason shown by kubectl): a name that is not a gpupool resource
 *     (with a did-you-mean), a fraction, cores or a memory percentage over
 *     100, a percentage under 1, a count over 16, a count of 0 beside
 *     memory or cores, and every other refusal of the extender's parser.
 * Anything else (another kind, another operation, a subresource, a pod
 * without GPU resources) is allowed untouched.
 */
#ifndef GP_AGENT_WEBHOOK_H
#define GP_AGENT_WEBHOOK_H

#include <jansson.h>
#include <stddef.h>

/* The API server takes objects of at most 3 MiB; defaulting and the review
 * around one add a little, so a review is allowed 4 MiB. */
#define GP_WEBHOOK_MAX_BODY ((size_t)4 << 20)

/* What a review needs to know. */
struct gp_webhook_opts {
	const char *scheduler_name; /* set on GPU pods; NULL: "gpupool-scheduler" */
	size_t max_body;            /* larger reviews: 413; 0: GP_WEBHOOK_MAX_BODY */
};

/* What a review came to, for counters and logs. */
enum gp_webhook_verdict {
	GP_WH_UNTOUCHED = 0, /* allowed, no patch */
	GP_WH_PATCHED,       /* allowed with a patch */
	GP_WH_REFUSED,       /* allowed: false */
	GP_WH_MALFORMED,     /* not an AdmissionReview we can answer (HTTP 4xx) */
};

/* Answer one AdmissionReview: `body` (len bytes, need not be
 * NUL-terminated) is what the API server POSTs.  Returns the HTTP status
 * and sets *out to the reply, a new reference the caller owns:
 *   200  an AdmissionReview with `response` (uid, allowed, and patchType
 *        with a base64 JSON patch, status, or warnings);
 *   400  the body is not an AdmissionReview v1 (*out is {"error": why});
 *   413  the body is over max_body ({"error": why});
 *   500  out of memory (*out may be NULL).
 * *verdict, when not NULL, says what it came to. */
int gp_webhook_review(const struct gp_webhook_opts *o, const char *body, size_t len, json_t **out,
		      enum gp_webhook_verdict *verdict) __attribute__((warn_unused_result));

/* The daemon's configuration (src/cli/webhook.c fills it). */
struct gp_webhook_config {
	const char *listen;         /* "host:port", ":8443" for every address */
	const char *cert_file;      /* PEM certificate chain, server first */
	const char *key_file;       /* PEM private key */
	const char *ready_file;     /* once serving: {"pid", "https_port"}; NULL: none */
	long reload_ms;             /* how often the files are checked; 0: SIGHUP only */
	struct gp_webhook_opts review;
};

/* Load the certificate and key, listen, serve until SIGTERM/SIGINT.
 * Returns 0 after a stop signal, or a negative errno when it cannot start
 * (the reason is logged). */
int gp_webhook_run(const struct gp_webhook_config *c) __attribute__((warn_unused_result));

#endif
