/* options.c - see options.h. */
#include "scaler/options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

#define MAX_SECRET 4096   /* a password file larger than this is a mistake */

const char gp_scaler_help[] =
	"usage: gpupool scaler [options] --queue NAME [queue options] [--queue ...]\n"
	"\n"
	"Serve the consumer saturation of RabbitMQ queues, and its forecast over\n"
	"the workers' warm-up time, to KEDA: as JSON for the metrics-api scaler\n"
	"(GET /v1/queues/VHOST/QUEUE), as KEDA's external scaler over gRPC, and\n"
	"as Prometheus metrics (/metrics).  Saturation is unacked messages /\n"
	"(consumers x prefetch); see docs/scaler.md.\n"
	"\n"
	"broker:\n"
	"      --url URL             management API (default http://localhost:15672)\n"
	"      --user NAME           basic-auth user (or GPUPOOL_RABBITMQ_USER)\n"
	"      --password-file FILE  its password (or GPUPOOL_RABBITMQ_PASSWORD);\n"
	"                            never on the command line\n"
	"      --ca-file FILE        CA certificates for an https URL\n"
	"      --insecure            do not verify the broker's certificate (tests)\n"
	"      --interval DURATION   between polls (default 5s: RabbitMQ refreshes\n"
	"                            its statistics every 5 s by default)\n"
	"      --timeout DURATION    per request to the broker (default 5s)\n"
	"\n"
	"queues (before the first --queue: defaults for all; after one: for it):\n"
	"  -q, --queue NAME          watch this queue (repeat for more)\n"
	"      --vhost VHOST         its virtual host (default /)\n"
	"      --prefetch N          each consumer's prefetch (basic.qos), 1-65535;\n"
	"                            1 (default) makes saturation the share of\n"
	"                            busy consumers\n"
	"      --target X            saturation to stay under, 0 < X <= 1\n"
	"                            (default 0.8)\n"
	"      --headroom X          slots kept free on top of the forecast demand D,\n"
	"                            as X x sqrt(D) (square-root staffing), X >= 0\n"
	"                            (default 2)\n"
	"      --warmup DURATION     forecast horizon: how long a new worker takes\n"
	"                            to serve (default 60s)\n"
	"      --consumers-per-replica N  consumers one worker pod opens (default 1)\n"
	"      --min-replicas N      floor of desired_replicas (default 0)\n"
	"      --max-replicas N      ceiling of desired_replicas (default 100); with\n"
	"                            --onprem-max, of both pools together\n"
	"\n"
	"hybrid bursting (per queue, like the queue options): one queue consumed by\n"
	"an on-premises pool and a cloud pool; each gets its own desired replicas\n"
	"(JSON \"pools\", gRPC scalerMetadata pool: onprem|cloud)\n"
	"      --onprem-max N        on-premises capacity in replicas, filled first;\n"
	"                            turns the split on (default 0: off)\n"
	"      --cloud-warmup DURATION  how long a new cloud worker takes to serve;\n"
	"                            the cloud is ordered this far ahead, so it is\n"
	"                            warm when on-premises saturates (default 180s)\n"
	"      --cloud-max N         ceiling of the cloud pool (default: --max-replicas)\n"
	"      --cloud-cost X        a cloud GPU-hour in on-premises GPU-hours, for\n"
	"                            dashboards (default 3)\n"
	"\n"
	"serving:\n"
	"      --http ADDR           HTTP listen address (default :8080; off)\n"
	"      --grpc ADDR           gRPC listen address (default :9090;\n"
	"                            unix:/path; off)\n"
	"      --ready-file PATH     once listening, write {\"pid\",\"http_port\",\n"
	"                            \"grpc_port\"} there as JSON (removed at exit)\n"
	"  -v, --verbose             log more (GPUPOOL_LOG=info)\n"
	"  -h, --help                this text\n"
	"\n"
	"DURATION is 500ms, 5s, 1.5m, 1h or a number of seconds.  When RabbitMQ\n"
	"cannot be polled, the figures are unavailable everywhere (HTTP 503, gRPC\n"
	"UNAVAILABLE, gpupool_scaler_up 0), never a made-up 0.\n"
	"\n"
	"example:\n"
	"  GPUPOOL_RABBITMQ_PASSWORD=... gpupool scaler --url http://rabbitmq:15672 \\\n"
	"      --user keda --prefetch 4 --warmup 60s --queue inference\n";

enum {
	O_URL = 256, O_USER, O_PASSWORD_FILE, O_CA_FILE, O_INSECURE, O_INTERVAL, O_TIMEOUT,
	O_VHOST, O_PREFETCH, O_TARGET, O_HEADROOM, O_WARMUP, O_CPR, O_MIN, O_MAX, O_ONPREM_MAX,
	O_CLOUD_WARMUP, O_CLOUD_MAX, O_CLOUD_COST, O_HTTP, O_GRPC, O_READY,
};

static const struct option longopts[] = {
	{"url", required_argument, NULL, O_URL},
	{"user", required_argument, NULL, O_USER},
	{"password-file", required_argument, NULL, O_PASSWORD_FILE},
	{"ca-file", required_argument, NULL, O_CA_FILE},
	{"insecure", no_argument, NULL, O_INSECURE},
	{"interval", required_argument, NULL, O_INTERVAL},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"queue", required_argument, NULL, 'q'},
	{"vhost", required_argument, NULL, O_VHOST},
	{"prefetch", required_argument, NULL, O_PREFETCH},
	{"target", required_argument, NULL, O_TARGET},
	{"headroom", required_argument, NULL, O_HEADROOM},
	{"warmup", required_argument, NULL, O_WARMUP},
	{"consumers-per-replica", required_argument, NULL, O_CPR},
	{"min-replicas", required_argument, NULL, O_MIN},
	{"max-replicas", required_argument, NULL, O_MAX},
	{"onprem-max", required_argument, NULL, O_ONPREM_MAX},
	{"cloud-warmup", required_argument, NULL, O_CLOUD_WARMUP},
	{"cloud-max", required_argument, NULL, O_CLOUD_MAX},
	{"cloud-cost", required_argument, NULL, O_CLOUD_COST},
	{"http", required_argument, NULL, O_HTTP},
	{"grpc", required_argument, NULL, O_GRPC},
	{"ready-file", required_argument, NULL, O_READY},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

int gp_scaler_parse_duration(const char *s, double *ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char *end;
	double v;

	if (!s || !*s || (*s != '.' && (*s < '0' || *s > '9')))
		return -EINVAL;
	v = strtod(s, &end);
	for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
		if (strcmp(end, units[i].unit) == 0 && isfinite(v * units[i].ms)) {
			*ms = v * units[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}

/* An integer in lo..hi. */
static int parse_uint(const char *s, uint64_t lo, uint64_t hi, uint32_t *out)
{
	uint64_t v;

	if (gp_parse_u64(s, &v) != 0 || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Set one queue option on q.  Returns 0 or -EINVAL with err filled. */
static int queue_option(int opt, const char *name, const char *v, struct gp_scaler_queue *q,
			char *err, size_t n)
{
	struct gp_forecast_config *fc = &q->forecast;
	struct gp_burst_config *bc = &q->burst;
	double d;

	switch (opt) {
	case O_VHOST:
		if (!*v || strlen(v) > GP_RABBIT_NAME_MAX)
			goto bad;
		strcpy(q->vhost, v);
		return 0;
	case O_PREFETCH:
		return parse_uint(v, 1, 65535, &q->prefetch) ? (snprintf(err, n,
			"--prefetch '%s': want an integer from 1 to 65535", v), -EINVAL) : 0;
	case O_TARGET: {
		char *end;
		d = strtod(v, &end);
		if (end == v || *end || !(d > 0.0 && d <= 1.0)) {
			snprintf(err, n, "--target '%s': want a number above 0 and at most 1", v);
			return -EINVAL;
		}
		fc->target = d;
		return 0;
	}
	case O_HEADROOM: {
		char *end;
		d = strtod(v, &end);
		if (end == v || *end || !(d >= 0.0 && d <= 100.0)) {
			snprintf(err, n, "--headroom '%s': want a number from 0 to 100", v);
			return -EINVAL;
		}
		fc->headroom_sigma = d;
		return 0;
	}
	case O_WARMUP:
		if (gp_scaler_parse_duration(v, &d) != 0 || !(d > 0)) {
			snprintf(err, n, "--warmup '%s': want a duration above 0 (60s, 2m)", v);
			return -EINVAL;
		}
		fc->horizon_s = d / 1000.0;
		return 0;
	case O_CPR:
		return parse_uint(v, 1, 1000000, &fc->consumers_per_replica) ? (snprintf(err, n,
			"--consumers-per-replica '%s': want an integer from 1 to 1000000", v),
			-EINVAL) : 0;
	case O_MIN:
		return parse_uint(v, 0, 1000000, &fc->min_replicas) ? (snprintf(err, n,
			"--min-replicas '%s': want an integer from 0 to 1000000", v), -EINVAL) : 0;
	case O_MAX:
		return parse_uint(v, 1, 1000000, &fc->max_replicas) ? (snprintf(err, n,
			"--max-replicas '%s': want an integer from 1 to 1000000", v), -EINVAL) : 0;
	case O_ONPREM_MAX:
		return parse_uint(v, 0, 1000000, &bc->onprem_max) ? (snprintf(err, n,
			"--onprem-max '%s': want an integer from 0 (off) to 1000000", v),
			-EINVAL) : 0;
	case O_CLOUD_WARMUP:
		if (gp_scaler_parse_duration(v, &d) != 0 || !(d > 0)) {
			snprintf(err, n, "--cloud-warmup '%s': want a duration above 0 (180s, 3m)", v);
			return -EINVAL;
		}
		bc->cloud_warmup_s = d / 1000.0;
		return 0;
	case O_CLOUD_MAX:
		return parse_uint(v, 1, 1000000, &bc->cloud_max) ? (snprintf(err, n,
			"--cloud-max '%s': want an integer from 1 to 1000000", v), -EINVAL) : 0;
	case O_CLOUD_COST: {
		char *end;
		d = strtod(v, &end);
		if (end == v || *end || !isfinite(d) || !(d > 0.0)) {
			snprintf(err, n, "--cloud-cost '%s': want a number above 0 (on-premises "
					 "GPU-hours per cloud GPU-hour)", v);
			return -EINVAL;
		}
		bc->cloud_cost = d;
		return 0;
	}
	}
bad:
	snprintf(err, n, "--%s '%s': want 1 to %d characters", name, v, GP_RABBIT_NAME_MAX);
	return -EINVAL;
}

/* Read a secret file: at most MAX_SECRET bytes, one trailing newline
 * dropped (editors add one; Kubernetes secrets have none). */
static int read_secret(const char *path, char **out, char *err, size_t n)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t len;

	if (!f) {
		snprintf(err, n, "--password-file %s: %s", path, strerror(errno));
		return -EIO;
	}
	buf = malloc(MAX_SECRET + 2);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(buf, 1, MAX_SECRET + 1, f);
	if (ferror(f) || len > MAX_SECRET) {
		snprintf(err, n, "--password-file %s: %s", path,
			 ferror(f) ? "read error" : "larger than 4096 bytes");
		fclose(f);
		free(buf);
		return -EIO;
	}
	fclose(f);
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* The token of the long option just parsed, when it was not written in
 * full, else NULL.  getopt_long accepts any unambiguous prefix, and
 * "--password SECRET" must not quietly become "--password-file SECRET"
 * (whose error message would then show the secret). */
static const char *abbreviated(char **argv, int optind_now, const struct option *o)
{
	const char *tok = argv[optind_now - 1];
	size_t len = strlen(o->name);

	if (o->has_arg == required_argument && optarg == tok)
		tok = argv[optind_now - 2]; /* "--name VALUE" */
	if (strncmp(tok, "--", 2) == 0 && strncmp(tok + 2, o->name, len) == 0 &&
	    (tok[2 + len] == '\0' || tok[2 + len] == '='))
		return NULL;
	return tok;
}

/* Settle and check a queue's hybrid settings: --cloud-max defaults to
 * --max-replicas, and the on-premises capacity must leave room for the
 * cloud under --max-replicas, which bounds both pools together (the
 * forecast never asks for more).  `cloud_opt` is the first cloud option
 * given after the queue's --queue, or NULL. */
static int hybrid_check(struct gp_scaler_queue *q, const char *cloud_opt, char *err, size_t n)
{
	struct gp_burst_config *bc = &q->burst;

	if (!bc->cloud_max)
		bc->cloud_max = q->forecast.max_replicas;
	if (!bc->onprem_max) {
		if (!cloud_opt)
			return 0;
		snprintf(err, n, "queue '%s': --%s without --onprem-max: the cloud pool "
				 "needs the on-premises capacity it bursts beyond", q->name, cloud_opt);
		return -EINVAL;
	}
	if (bc->onprem_max >= q->forecast.max_replicas) {
		snprintf(err, n, "queue '%s': --onprem-max %u is not below --max-replicas %u, "
				 "which bounds both pools together: the cloud pool would never be "
				 "used", q->name, (unsigned)bc->onprem_max,
			 (unsigned)q->forecast.max_replicas);
		return -EINVAL;
	}
	if (gp_burst_config_check(bc, NULL) != 0) { /* the parser checked each field */
		snprintf(err, n, "queue '%s': its hybrid settings do not check", q->name);
		return -EINVAL;
	}
	return 0;
}

/* "off" turns a server off. */
static const char *listen_arg(const char *v)
{
	return strcmp(v, "off") == 0 ? NULL : v;
}

int gp_scaler_options(int argc, char **argv, struct gp_scaler_options *o, char *err, size_t n)
{
	struct gp_scaler_config *c = &o->cfg;
	struct gp_scaler_queue defaults = {.vhost = "/", .prefetch = 1};
	/* The first cloud option given after each --queue, to refuse one
	 * that would silently do nothing (no --onprem-max for that queue). */
	const char *cloud_opt[GP_SCALER_MAX_QUEUES] = {NULL};
	const char *password_file = NULL, *env;
	double ms;
	int opt, idx, rc;

	memset(o, 0, sizeof *o);
	gp_forecast_config_default(&defaults.forecast);
	gp_burst_config_default(&defaults.burst);
	defaults.burst.cloud_max = 0; /* unset: the queue's --max-replicas */
	c->rabbit.url = "http://localhost:15672";
	c->rabbit.timeout_ms = 5000;
	c->interval_ms = 5000;
	c->http_listen = ":8080";
	c->grpc_listen = ":9090";
	o->queues = calloc(GP_SCALER_MAX_QUEUES, sizeof *o->queues);
	if (!o->queues)
		return -ENOMEM;
	c->queues = o->queues;
	optind = 0; /* a fresh getopt scan (GNU), also when called twice */
	opterr = 0;
	/* '+': stop at the first non-option, so argv[optind - 1] is the token
	 * just parsed (see abbreviated). */
	while ((idx = -1, opt = getopt_long(argc, argv, "+:q:vh", longopts, &idx)) != -1) {
		struct gp_scaler_queue *q =
			c->nqueues ? &o->queues[c->nqueues - 1] : &defaults;
		const char *abbr = idx >= 0 ? abbreviated(argv, optind, &longopts[idx]) : NULL;
		if (abbr) {
			snprintf(err, n, "unknown option '%.*s' (write options in full)",
				 (int)strcspn(abbr, "="), abbr);
			return -EINVAL;
		}
		switch (opt) {
		case O_URL:
			c->rabbit.url = optarg;
			break;
		case O_USER:
			c->rabbit.user = optarg;
			break;
		case O_PASSWORD_FILE:
			password_file = optarg;
			break;
		case O_CA_FILE:
			c->rabbit.ca_file = optarg;
			break;
		case O_INSECURE:
			c->rabbit.insecure = 1;
			break;
		case O_INTERVAL:
		case O_TIMEOUT:
			if (gp_scaler_parse_duration(optarg, &ms) != 0 || ms < 10 || ms > 3600000) {
				snprintf(err, n, "--%s '%s': want a duration from 10ms to 1h",
					 opt == O_INTERVAL ? "interval" : "timeout", optarg);
				return -EINVAL;
			}
			if (opt == O_INTERVAL)
				c->interval_ms = (uint64_t)ms;
			else
				c->rabbit.timeout_ms = (long)ms;
			break;
		case 'q':
			if (c->nqueues == GP_SCALER_MAX_QUEUES) {
				snprintf(err, n, "--queue '%s': at most %d queues", optarg,
					 GP_SCALER_MAX_QUEUES);
				return -EINVAL;
			}
			if (!*optarg || strlen(optarg) > GP_RABBIT_NAME_MAX) {
				snprintf(err, n, "--queue '%s': want 1 to %d characters", optarg,
					 GP_RABBIT_NAME_MAX);
				return -EINVAL;
			}
			o->queues[c->nqueues] = defaults;
			strcpy(o->queues[c->nqueues].name, optarg);
			c->nqueues++;
			break;
		case O_VHOST:
		case O_PREFETCH:
		case O_TARGET:
		case O_HEADROOM:
		case O_WARMUP:
		case O_CPR:
		case O_MIN:
		case O_MAX:
		case O_ONPREM_MAX:
		case O_CLOUD_WARMUP:
		case O_CLOUD_MAX:
		case O_CLOUD_COST:
			if ((rc = queue_option(opt, longopts[idx].name, optarg, q, err, n)))
				return rc;
			if (c->nqueues && !cloud_opt[c->nqueues - 1] &&
			    (opt == O_CLOUD_WARMUP || opt == O_CLOUD_MAX || opt == O_CLOUD_COST))
				cloud_opt[c->nqueues - 1] = longopts[idx].name;
			break;
		case O_HTTP:
			c->http_listen = listen_arg(optarg);
			break;
		case O_GRPC:
			c->grpc_listen = listen_arg(optarg);
			break;
		case O_READY:
			c->ready_file = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			o->help = 1;
			return 0;
		case ':':
			snprintf(err, n, "option '%s' needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, n, "unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		snprintf(err, n, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (!c->nqueues) {
		snprintf(err, n, "no --queue given: name at least one queue to watch");
		return -EINVAL;
	}
	if (!c->http_listen && !c->grpc_listen) {
		snprintf(err, n, "--http off and --grpc off: nothing would be served");
		return -EINVAL;
	}
	if (strncmp(c->rabbit.url, "http://", 7) != 0 && strncmp(c->rabbit.url, "https://", 8) != 0) {
		snprintf(err, n, "--url '%s': want http://HOST:PORT or https://...", c->rabbit.url);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nqueues; i++) {
		struct gp_scaler_queue *q = &o->queues[i];
		const char *field = "?";
		if (gp_forecast_config_check(&q->forecast, &field) != 0) {
			snprintf(err, n, "queue '%s': %s", q->name,
				 strcmp(field, "min_replicas") == 0
					 ? "--min-replicas is above --max-replicas"
					 : "its forecast settings do not check");
			return -EINVAL;
		}
		if ((rc = hybrid_check(q, cloud_opt[i], err, n)))
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(o->queues[j].name, q->name) == 0 &&
			    strcmp(o->queues[j].vhost, q->vhost) == 0) {
				snprintf(err, n, "--queue '%s' in vhost '%s' is given twice", q->name,
					 q->vhost);
				return -EINVAL;
			}
		}
	}
	if (!c->rabbit.user && (env = getenv("GPUPOOL_RABBITMQ_USER")) && *env)
		c->rabbit.user = env;
	if (password_file) {
		if ((rc = read_secret(password_file, &o->password, err, n)))
			return rc;
	} else if ((env = getenv("GPUPOOL_RABBITMQ_PASSWORD"))) {
		o->password = strdup(env);
		if (!o->password)
			return -ENOMEM;
	}
	if (o->password && !c->rabbit.user) {
		snprintf(err, n, "a password is given but no --user");
		return -EINVAL;
	}
	c->rabbit.password = o->password;
	return 0;
}

void gp_scaler_options_free(struct gp_scaler_options *o)
{
	free(o->queues);
	if (o->password) {
		/* Do not leave the secret in freed memory. */
		explicit_bzero(o->password, strlen(o->password));
		free(o->password);
	}
	memset(o, 0, sizeof *o);
}
