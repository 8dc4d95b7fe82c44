/* machine.c - see machine.h. */
#include "sim/machine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"

#define MIB (1024 * 1024)

/* First match wins, so longer prefixes come first ("L40" before "L4").
 * Figures are those of the public data sheets; the last row is the
 * default (an H100) for models we do not know.  NVLink figures are those
 * of the SXM form on an HGX baseboard (H100: 18 links over 4 NVSwitches;
 * A100: 12 over 6); L40, L4 and T4 exist only as PCIe cards.  They apply
 * only to models named "...SXM..." (gp__sim_gpu_nvlinks). */
static const struct gp_sim_model models[] = {
	{"H100", 9, 0, 0x2330, 1980000, 2619000, 5120, 50 * MIB, 233472, 232448, 2048, 32,
	 18, 4, 0x22a3},
	{"H200", 9, 0, 0x2335, 1980000, 3201000, 6144, 60 * MIB, 233472, 232448, 2048, 32,
	 18, 4, 0x22a3},
	{"GH200", 9, 0, 0x2342, 1980000, 2619000, 6144, 60 * MIB, 233472, 232448, 2048, 32,
	 18, 4, 0x22a3},
	{"A100", 8, 0, 0x20b0, 1410000, 1215000, 5120, 40 * MIB, 167936, 166912, 2048, 32,
	 12, 6, 0x1af1},
	{"L40", 8, 9, 0x26b5, 2490000, 9001000, 384, 96 * MIB, 102400, 101376, 1536, 24,
	 0, 0, 0},
	{"L4", 8, 9, 0x27b8, 2040000, 6251000, 192, 48 * MIB, 102400, 101376, 1536, 24,
	 0, 0, 0},
	{"T4", 7, 5, 0x1eb8, 1590000, 5001000, 256, 4 * MIB, 65536, 65536, 1024, 16,
	 0, 0, 0},
	{"", 9, 0, 0x2330, 1980000, 2619000, 5120, 50 * MIB, 233472, 232448, 2048, 32,
	 12, 6, 0x22a3},
};

const struct gp_sim_model *gp__sim_model(const char *model)
{
	size_t n = sizeof models / sizeof *models;

	for (size_t i = 0; i + 1 < n; i++)
		if (strncasecmp(model, models[i].prefix, strlen(models[i].prefix)) == 0)
			return &models[i];
	return &models[n - 1];
}

static int model_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ' ';
}

/* Parse one "MODEL:MEMORY:SMS" item of length len.  Returns 0 or -EINVAL
 * with the reason in err. */
static int parse_item(const char *s, size_t len, struct gp_sim_gpu *g, char *err,
		      size_t errlen)
{
	char buf[128], *mem, *sms;
	uint64_t v;

	if (len == 0) {
		snprintf(err, errlen, "empty item");
		return -EINVAL;
	}
	if (len >= sizeof buf) {
		snprintf(err, errlen, "item '%.40s...' is too long", s);
		return -EINVAL;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	mem = strchr(buf, ':');
	sms = mem ? strchr(mem + 1, ':') : NULL;
	if (!mem || !sms || strchr(sms + 1, ':')) {
		snprintf(err, errlen, "item '%s' is not MODEL:MEMORY:SMS", buf);
		return -EINVAL;
	}
	*mem++ = '\0';
	*sms++ = '\0';
	if (buf[0] == '\0' || strlen(buf) >= GP_SIM_MODEL_MAX) {
		snprintf(err, errlen, "item '%s:%s:%s': model must be 1 to %d characters",
			 buf, mem, sms, GP_SIM_MODEL_MAX - 1);
		return -EINVAL;
	}
	for (const char *c = buf; *c; c++) {
		if (!model_char_ok(*c)) {
			snprintf(err, errlen, "item '%s:%s:%s': model has character '%c'",
				 buf, mem, sms, *c);
			return -EINVAL;
		}
	}
	if (gp_parse_size(mem, &v) || v <= ((uint64_t)256 << 20) || v > ((uint64_t)16 << 40)) {
		snprintf(err, errlen,
			 "item '%s:%s:%s': memory '%s' is not a size between 256MiB and 16TiB",
			 buf, mem, sms, mem);
		return -EINVAL;
	}
	g->memory = v;
	if (gp_parse_u64(sms, &v) || v == 0 || v > 1024) {
		snprintf(err, errlen, "item '%s:%s:%s': SMS '%s' is not a number from 1 to 1024",
			 buf, mem, sms, sms);
		return -EINVAL;
	}
	g->sms = (uint32_t)v;
	memset(g->model, 0, sizeof g->model);
	memcpy(g->model, buf, strlen(buf));
	return 0;
}

int gp__sim_config_parse(const char *text, struct gp_sim_config *cfg, char *err,
			 size_t errlen)
{
	const char *cur = text, *item;
	size_t len;
	int rc;

	memset(cfg, 0, sizeof *cfg);
	if (!text) {
		snprintf(err, errlen, "no GPU list");
		return -EINVAL;
	}
	while ((item = gp_list_next(&cur, ',', &len)) != NULL) {
		if (cfg->n == GP_SIM_GPUS_MAX) {
			snprintf(err, errlen, "more than %d GPUs (item '%.*s')", GP_SIM_GPUS_MAX,
				 (int)(len > 60 ? 60 : len), item);
			return -EINVAL;
		}
		rc = parse_item(item, len, &cfg->gpu[cfg->n], err, errlen);
		if (rc)
			return rc;
		cfg->n++;
	}
	if (cfg->n == 0) {
		snprintf(err, errlen, "the list names no GPU");
		return -EINVAL;
	}
	return 0;
}

void gp__sim_config_format(const struct gp_sim_config *cfg, char *buf, size_t n)
{
	size_t used = 0;

	if (n)
		buf[0] = '\0';
	for (unsigned i = 0; i < cfg->n && i < GP_SIM_GPUS_MAX && used < n; i++) {
		int w = snprintf(buf + used, n - used, "%s%s:%lluMiB:%u", i ? "," : "",
				 cfg->gpu[i].model,
				 (unsigned long long)(cfg->gpu[i].memory >> 20), cfg->gpu[i].sms);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* 64-bit FNV-1a, seeded: enough to make distinct, stable identities. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

void gp__sim_gpu_uuid(unsigned index, const char *model, unsigned char out[16])
{
	uint64_t h[2];

	for (int k = 0; k < 2; k++) {
		h[k] = fnv1a(0xcbf29ce484222325ull ^ (uint64_t)(k + 1) * 0x9e3779b97f4a7c15ull,
			     "gpupool-sim", 11);
		h[k] = fnv1a(h[k], &index, sizeof index);
		h[k] = fnv1a(h[k], model, strlen(model));
	}
	for (int i = 0; i < 8; i++) {
		out[i] = (unsigned char)(h[0] >> (8 * i));
		out[8 + i] = (unsigned char)(h[1] >> (8 * i));
	}
}

void gp__sim_gpu_uuid_str(unsigned index, const char *model, char *buf, size_t n)
{
	unsigned char u[16];

	gp__sim_gpu_uuid(index, model, u);
	snprintf(buf, n,
		 "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		 u[12], u[13], u[14], u[15]);
}

void gp__sim_gpu_name(const char *model, char *buf, size_t n)
{
	if (strncasecmp(model, "NVIDIA", 6) == 0)
		snprintf(buf, n, "%s", model);
	else
		snprintf(buf, n, "NVIDIA %s", model);
}

unsigned gp__sim_gpu_pci_bus(unsigned index)
{
	/* Spread like the buses of an 8-GPU server: 0x18, 0x2a, 0x3c, ... */
	return (0x18 + 0x12 * index) & 0xff;
}

unsigned gp__sim_gpu_numa(unsigned index, unsigned n)
{
	if (n <= 1)
		return 0;
	return index < (n + 1) / 2 ? 0 : 1;
}

/* Does `s` contain `needle`, ignoring case? */
static int contains_nocase(const char *s, const char *needle)
{
	size_t n = strlen(needle);

	for (; *s; s++)
		if (strncasecmp(s, needle, n) == 0)
			return 1;
	return 0;
}

int gp__sim_gpu_nvlinks(const char *model)
{
	/* Only the SXM form has NVLinks to NVSwitches; the PCIe form of the
	 * same GPU (bridges aside, which the simulator does not model) has
	 * none, and NVML says NOT_SUPPORTED there. */
	if (!contains_nocase(model, "SXM"))
		return 0;
	return gp__sim_model(model)->nvlinks;
}
