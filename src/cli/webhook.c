/* webhook.c - `gpupool webhook`: the mutating admission webhook.  Reads
 * the command line from a table of options and runs src/agent/webhook.c. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/webhook.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "common/log.h"
#include "common/parse.h"

static const char help[] =
	"usage: gpupool webhook --tls-cert FILE --tls-key FILE [options]\n"
	"\n"
	"The mutating admission webhook (AdmissionReview admission.k8s.io/v1, over\n"
	"HTTPS).  For a pod being created whose containers (init containers too)\n"
	"ask for gpupool's GPU resources (gpupool.io/vgpu, gpupool.io/vgpu-<model>,\n"
	"gpupool.io/vgpu-memory, gpupool.io/vgpu-memory-percent,\n"
	"gpupool.io/vgpu-cores) or HAMi's (nvidia.com/gpu, nvidia.com/gpumem,\n"
	"nvidia.com/gpumem-percentage, nvidia.com/gpucores), it\n"
	"  - sets spec.schedulerName to gpupool's scheduler (unless the pod names\n"
	"    another non-default scheduler: then it warns and leaves it);\n"
	"  - adds a count of 1 vGPU (gpupool.io/vgpu or nvidia.com/gpu) to a\n"
	"    container that asks for memory or cores without one;\n"
	"  - refuses what can never be placed, with the reason kubectl shows:\n"
	"    unknown gpupool.io/ names (with a did-you-mean), fractions, cores or\n"
	"    a memory percentage over 100, a percentage under 1, more than 16\n"
	"    vGPUs, a count of 0 beside memory or cores; the same rules as\n"
	"    `gpupool sched` (docs/sched.md, \"Resource names\").\n"
	"Other objects, other operations and pods without GPU resources pass\n"
	"untouched.\n"
	"\n"
	"endpoints (HTTPS only, TLS 1.2 or later): POST /mutate, GET /healthz\n"
	"\n"
	"options:\n"
	"  -l, --listen ADDR          host:port to serve on (default :8443, every\n"
	"                             address; port 0 for any free one)\n"
	"      --tls-cert FILE        PEM certificate chain, the server's first\n"
	"                             (required)\n"
	"      --tls-key FILE         PEM private key, without a passphrase (required)\n"
	"      --reload-interval DUR  how often the two files are checked for a new\n"
	"                             version, e.g. a rotated Secret (default 10s;\n"
	"                             0: only on SIGHUP).  New connections get the\n"
	"                             new certificate; a pair that does not load\n"
	"                             is logged and the old one kept\n"
	"      --scheduler-name NAME  the scheduler GPU pods are given (default\n"
	"                             gpupool-scheduler)\n"
	"      --max-body SIZE        largest AdmissionReview accepted (4MiB: the API\n"
	"                             server takes objects up to 3MiB, and the review\n"
	"                             around one adds some); larger: 413\n"
	"      --ready-file PATH      once serving, write {\"pid\", \"https_port\"}\n"
	"                             there (for tests and supervisors)\n"
	"  -v, --verbose              log every refusal and reload (GPUPOOL_LOG=info)\n"
	"  -h, --help                 this text\n"
	"\n"
	"DUR is a whole number with a unit: ms, s, m or h (a bare number is\n"
	"seconds).  SIZE takes binary units (KiB, MiB).\n"
	"\n"
	"Signals: SIGHUP re-reads the certificate and key; SIGTERM and SIGINT\n"
	"stop (exit 0).  Exit status 1 when it cannot start (a certificate or key\n"
	"that does not load, the port is taken), 2 for a usage error.\n"
	"\n"
	"example (the Service's certificate from cert-manager, mounted from a\n"
	"Secret):\n"
	"  gpupool webhook --tls-cert /tls/tls.crt --tls-key /tls/tls.key\n"
	"and a MutatingWebhookConfiguration whose webhook has\n"
	"  clientConfig: {service: {name: gpupool-webhook, path: /mutate}}\n"
	"  rules: [{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1],\n"
	"           resources: [pods]}]\n"
	"  admissionReviewVersions: [v1], sideEffects: None\n";

/* Everything the command line sets. */
struct cfg {
	struct gp_webhook_config w;
	int verbose, help;
};

#define W(m) (offsetof(struct cfg, w) + offsetof(struct gp_webhook_config, m))

static const struct gp_cli_opt opts[] = {
	{"listen", 'l', GP_OPT_STR, W(listen), 0, 0},
	{"tls-cert", 0, GP_OPT_STR, W(cert_file), 0, 0},
	{"tls-key", 0, GP_OPT_STR, W(key_file), 0, 0},
	{"reload-interval", 0, GP_OPT_MS, W(reload_ms), 0, 0},
	{"scheduler-name", 0, GP_OPT_NAME, W(review.scheduler_name), 0, 0},
	{"max-body", 0, GP_OPT_SIZE, W(review.max_body), 4096, (uint64_t)64 << 20},
	{"ready-file", 0, GP_OPT_STR, W(ready_file), 0, 0},
	{"verbose", 'v', GP_OPT_FLAG, offsetof(struct cfg, verbose), 0, 0},
	{"help", 'h', GP_OPT_FLAG, offsetof(struct cfg, help), 0, 0},
};

#define NOPTS (sizeof opts / sizeof *opts)

int gp_cli_webhook(int argc, char **argv)
{
	struct cfg c = {
		.w = {
			.listen = ":8443",
			.reload_ms = 10000,
			.review = {.scheduler_name = "gpupool-scheduler",
				   .max_body = GP_WEBHOOK_MAX_BODY},
		},
	};
	enum gp_log_level level;
	int rc;

	if ((rc = gp_cli_parse_opts("webhook", opts, NOPTS, argc, argv, &c)))
		return rc;
	if (c.help) {
		fputs(help, stdout);
		return GP_EXIT_OK;
	}
	if (optind < argc)
		return gp_cli_usage_error("webhook", "unexpected argument '%s'", argv[optind]);
	if (!c.w.cert_file)
		return gp_cli_usage_error("webhook", "--tls-cert is required: the API server "
						     "calls webhooks over HTTPS only");
	if (!c.w.key_file)
		return gp_cli_usage_error("webhook", "--tls-key is required (the key of "
						     "--tls-cert)");
	if (c.w.reload_ms > 0 && c.w.reload_ms < 100)
		return gp_cli_usage_error("webhook", "--reload-interval must be 0 or at least 100ms");
	if (gp_log_parse_level(getenv("GPUPOOL_LOG"), &level) != 0)
		level = GP_LOG_WARN;
	if (c.verbose && level < GP_LOG_INFO)
		level = GP_LOG_INFO;
	gp_log_setup(level, "webhook");
	return gp_webhook_run(&c.w) ? GP_EXIT_FAIL : GP_EXIT_OK;
}
