/* webhook.c - `gpupool webhook`: the mutating admission webhook.  Reads
 * the command line from a table of options and runs src/agent/webhook.c. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/webhook.h"
#include "cli/cli.h"
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

/* How an option's value is read. */
enum kind { K_STR, K_MS, K_SIZE, K_NAME, K_FLAG };

struct opt {
	const char *name;
	int short_name;
	enum kind kind;
	size_t off; /* into struct cfg */
};

/* Everything the command line sets. */
struct cfg {
	struct gp_webhook_config w;
	int verbose, help;
};

#define W(m) (offsetof(struct cfg, w) + offsetof(struct gp_webhook_config, m))

static const struct opt opts[] = {
	{"listen", 'l', K_STR, W(listen)},
	{"tls-cert", 0, K_STR, W(cert_file)},
	{"tls-key", 0, K_STR, W(key_file)},
	{"reload-interval", 0, K_MS, W(reload_ms)},
	{"scheduler-name", 0, K_NAME, W(review.scheduler_name)},
	{"max-body", 0, K_SIZE, W(review.max_body)},
	{"ready-file", 0, K_STR, W(ready_file)},
	{"verbose", 'v', K_FLAG, offsetof(struct cfg, verbose)},
	{"help", 'h', K_FLAG, offsetof(struct cfg, help)},
};

#define NOPTS (sizeof opts / sizeof *opts)

/* A duration: digits and a unit (ms, s, m, h; none = s), at most a day,
 * into milliseconds.  Returns 0 or -EINVAL. */
static int parse_ms(const char *s, long *out)
{
	static const struct {
		const char *unit;
		long ms;
	} units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || v > 86400000L)
		return -EINVAL;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (strcmp(end, units[i].unit) == 0) {
			if (v * units[i].ms > 86400000L)
				return -EINVAL;
			*out = v * units[i].ms;
			return 0;
		}
	return -EINVAL;
}

/* A scheduler name as Kubernetes takes it (a DNS subdomain): 1-253 of
 * a-z, 0-9, '-' and '.', starting and ending alphanumeric. */
static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* Store one option's value into c.  Returns 0 or a usage error. */
static int set(struct cfg *c, const struct opt *o, const char *val)
{
	char *p = (char *)c + o->off;
	uint64_t u;

	switch (o->kind) {
	case K_STR:
		if (!*val)
			return gp_cli_usage_error("webhook", "--%s: empty value", o->name);
		*(const char **)p = val;
		return 0;
	case K_NAME:
		if (!valid_name(val))
			return gp_cli_usage_error("webhook",
						  "--%s: '%s' is not a scheduler name (lowercase "
						  "letters, digits, '-' and '.')",
						  o->name, val);
		*(const char **)p = val;
		return 0;
	case K_MS:
		if (parse_ms(val, (long *)p))
			return gp_cli_usage_error("webhook",
						  "--%s: '%s' is not a duration (e.g. 10s, 500ms, 0)",
						  o->name, val);
		return 0;
	case K_SIZE:
		if (gp_parse_size(val, &u) || u < 4096 || u > ((uint64_t)64 << 20))
			return gp_cli_usage_error("webhook", "--%s: '%s' is not a size of 4KiB to 64MiB",
						  o->name, val);
		*(size_t *)p = (size_t)u;
		return 0;
	case K_FLAG:
		*(int *)p = 1;
		return 0;
	}
	return GP_EXIT_USAGE;
}

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
	struct option lo[NOPTS + 1];
	char shorts[2 * NOPTS + 2], *sp = shorts;
	enum gp_log_level level;
	int ch, idx, rc;

	memset(lo, 0, sizeof lo);
	for (size_t i = 0; i < NOPTS; i++) {
		int arg = opts[i].kind == K_FLAG ? no_argument : required_argument;
		lo[i] = (struct option){opts[i].name, arg, NULL,
					opts[i].short_name ? opts[i].short_name : 256 + (int)i};
		if (opts[i].short_name) {
			*sp++ = (char)opts[i].short_name;
			if (arg == required_argument)
				*sp++ = ':';
		}
	}
	*sp = '\0';
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, shorts, lo, &idx)) != -1) {
		const struct opt *o = NULL;

		if (ch == '?' || ch == ':')
			return gp_cli_usage_error("webhook", "unknown option or missing value: '%s'",
						  argv[optind - 1]);
		for (size_t i = 0; i < NOPTS; i++)
			if (ch == (opts[i].short_name ? opts[i].short_name : 256 + (int)i))
				o = &opts[i];
		if (!o)
			return gp_cli_usage_error("webhook", "unknown option '%s'", argv[optind - 1]);
		if ((rc = set(&c, o, optarg)))
			return rc;
	}
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
