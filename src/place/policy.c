/* policy.c - placement policies as users write them: parse and format.
 *
 *   "binpack"                 node=binpack, gpu=binpack, topology=on
 *   "spread,gpu=binpack"      spread nodes, pack cards inside a node
 *   "fgd"  "ours"             fragmentation-aware (they pick cards too)
 *   "node=random,topology=off"
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "place/pl_int.h"

static const struct {
	const char *name;
	const char *alias;
	enum gp_node_policy p;
} node_names[] = {
	{"ours", NULL, GP_NODE_OURS},
	{"fgd", NULL, GP_NODE_FGD},
	{"binpack", NULL, GP_NODE_BINPACK},
	{"spread", NULL, GP_NODE_SPREAD},
	{"bestfit", "best-fit", GP_NODE_BESTFIT},
	{"packing", "gpu-packing", GP_NODE_PACKING},
	{"random", "random-fit", GP_NODE_RANDOM},
};

static const struct {
	const char *name;
	enum gp_gpu_policy p;
} gpu_names[] = {
	{"binpack", GP_GPU_BINPACK},
	{"spread", GP_GPU_SPREAD},
};

static bool eq(const char *item, size_t len, const char *word)
{
	return word && strlen(word) == len && strncasecmp(item, word, len) == 0;
}

static int parse_node(const char *v, size_t len, enum gp_node_policy *out)
{
	for (size_t i = 0; i < sizeof node_names / sizeof *node_names; i++)
		if (eq(v, len, node_names[i].name) || eq(v, len, node_names[i].alias)) {
			*out = node_names[i].p;
			return 0;
		}
	return -EINVAL;
}

int gp_policy_parse(const char *s, struct gp_policy *out, char *err, size_t errlen)
{
	struct gp_policy p = {.node = GP_NODE_OURS, .gpu = GP_GPU_BINPACK, .topology = true};
	const char *cur = s, *item;
	size_t len;
	bool gpu_set = false;

	if (!s) {
		gp__why(err, errlen, "no policy given");
		return -EINVAL;
	}
	if (strlen(s) > 256) {
		gp__why(err, errlen, "policy is longer than 256 bytes");
		return -EINVAL;
	}
	while ((item = gp_list_next(&cur, ',', &len))) {
		const char *eqs = memchr(item, '=', len);
		size_t klen = eqs ? (size_t)(eqs - item) : len;
		const char *v = eqs ? eqs + 1 : item;
		size_t vlen = eqs ? len - klen - 1 : len;

		if (len == 0) {
			gp__why(err, errlen, "empty item in policy \"%s\"", s);
			return -EINVAL;
		}
		if (!eqs || eq(item, klen, "node")) {
			if (parse_node(v, vlen, &p.node) < 0) {
				gp__why(err, errlen,
					"unknown node policy \"%.*s\" (ours, fgd, binpack, spread, bestfit, packing, random)",
					(int)vlen, v);
				return -EINVAL;
			}
		} else if (eq(item, klen, "gpu")) {
			size_t i;

			for (i = 0; i < sizeof gpu_names / sizeof *gpu_names; i++)
				if (eq(v, vlen, gpu_names[i].name))
					break;
			if (i == sizeof gpu_names / sizeof *gpu_names) {
				gp__why(err, errlen, "unknown GPU policy \"%.*s\" (binpack, spread)", (int)vlen, v);
				return -EINVAL;
			}
			p.gpu = gpu_names[i].p;
			gpu_set = true;
		} else if (eq(item, klen, "topology")) {
			if (eq(v, vlen, "on") || eq(v, vlen, "true"))
				p.topology = true;
			else if (eq(v, vlen, "off") || eq(v, vlen, "false"))
				p.topology = false;
			else {
				gp__why(err, errlen, "topology takes on or off, not \"%.*s\"", (int)vlen, v);
				return -EINVAL;
			}
		} else {
			gp__why(err, errlen, "unknown policy key \"%.*s\" (node, gpu, topology)", (int)klen, item);
			return -EINVAL;
		}
	}
	if (gpu_set && (p.node == GP_NODE_FGD || p.node == GP_NODE_OURS)) {
		gp__why(err, errlen, "gpu= does not apply to %s: it picks GPUs by fragmentation",
			p.node == GP_NODE_FGD ? "fgd" : "ours");
		return -EINVAL;
	}
	*out = p;
	return 0;
}

const char *gp__node_policy_name(enum gp_node_policy p)
{
	for (size_t i = 0; i < sizeof node_names / sizeof *node_names; i++)
		if (node_names[i].p == p)
			return node_names[i].name;
	return "?";
}

char *gp_policy_format(const struct gp_policy *p, char *buf, size_t n)
{
	if (p->node == GP_NODE_FGD || p->node == GP_NODE_OURS)
		snprintf(buf, n, "node=%s,topology=%s", gp__node_policy_name(p->node), p->topology ? "on" : "off");
	else
		snprintf(buf, n, "node=%s,gpu=%s,topology=%s", gp__node_policy_name(p->node),
			 (unsigned)p->gpu < GP_GPU__COUNT ? gpu_names[p->gpu].name : "?",
			 p->topology ? "on" : "off");
	return buf;
}
