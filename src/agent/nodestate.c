/* nodestate.c - see nodestate.h. */
#include "agent/nodestate.h"

#include <jansson.h>

#include "common/clock.h"

char *gp_node_state(const struct gp_agent_snap *s, unsigned slices, long long wall_ms)
{
	json_t *doc = json_pack("{s:i}", "version", 1), *gpus = json_array();
	char *text = NULL;

	if (!doc || !gpus)
		goto out;
	if (wall_ms >= 0) {
		char when[40];

		gp_time_format(wall_ms, when, sizeof when);
		json_object_set_new(doc, "updated", json_string(when));
	}
	for (unsigned i = 0; i < s->ngpu; i++) {
		const struct gp_agent_gpu *g = &s->gpu[i];
		json_t *links = json_object();
		/* A card that never answered has no size; the protocol wants
		 * at least a byte, and the card is unhealthy anyway. */
		uint64_t mem = g->mem_total ? g->mem_total : 1;

		for (unsigned j = 0; j < s->ngpu; j++)
			if (j != i)
				json_object_set_new(links, s->gpu[j].uuid, json_integer(g->link[j]));
		json_array_append_new(gpus, json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:b, s:o}",
						      "uuid", g->uuid, "model", g->model,
						      "memoryBytes", (json_int_t)mem, "compute", 100,
						      "slices", (int)slices, "numa", g->numa,
						      "healthy", g->healthy, "links", links));
	}
	json_object_set(doc, "gpus", gpus);
	text = json_dumps(doc, JSON_COMPACT);
out:
	json_decref(gpus);
	json_decref(doc);
	return text;
}
