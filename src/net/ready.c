/* ready.c - see ready.h. */
#include "net/ready.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int gp_ready_write(const char *path, int http_port, int grpc_port)
{
	json_t *doc = json_pack("{s:i}", "pid", (int)getpid());
	char *tmp = NULL;
	int rc = -ENOMEM;

	if (!doc || asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		goto out;
	}
	if (http_port >= 0)
		json_object_set_new(doc, "http_port", json_integer(http_port));
	if (grpc_port >= 0)
		json_object_set_new(doc, "grpc_port", json_integer(grpc_port));
	errno = 0;
	if (json_dump_file(doc, tmp, JSON_COMPACT) != 0 || rename(tmp, path) != 0) {
		rc = errno ? -errno : -EIO;
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	json_decref(doc);
	return rc;
}
