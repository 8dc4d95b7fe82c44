/* daemon.c - see scaler.h.  Start order: poller, HTTP, gRPC, ready file;
 * stop order the reverse, with the gRPC server stopped before the service
 * whose streams it ends. */
#include "scaler/scaler.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "net/grpc.h"
#include "net/http.h"
#include "net/loop.h"
#include "net/ready.h"
#include "scaler/httpapi.h"
#include "scaler/keda.h"

#define MAX_REQUEST_BODY 65536  /* the HTTP API takes no bodies; a cap anyway */
#define MAX_GRPC_MESSAGE 65536  /* a ScaledObjectRef is a few hundred bytes */

int gp_scaler_run(const struct gp_scaler_config *c)
{
	struct gp_loop *loop = gp_loop_new();
	struct gp_poller *poller = NULL;
	struct gp_http *http = NULL;
	struct gp_grpc *grpc = NULL;
	struct gp_keda *keda = NULL;
	int rc = -ENOMEM, ready = 0;

	if (!loop) {
		gp_error("cannot create the event loop");
		return -ENOMEM;
	}
	rc = gp_poller_start(&poller, &c->rabbit, c->queues, c->nqueues, c->interval_ms);
	if (rc) {
		gp_error("cannot start polling: %s", strerror(-rc));
		goto out;
	}
	if (c->http_listen) {
		struct gp_http_opts o = {.listen = c->http_listen, .max_body = MAX_REQUEST_BODY,
					 .max_headers = 16384};
		rc = gp_http_start(&http, gp_loop_base(loop), &o, gp_scaler_routes, poller);
		if (rc) {
			gp_error("cannot listen for HTTP on %s: %s", c->http_listen, strerror(-rc));
			goto out;
		}
	}
	if (c->grpc_listen) {
		struct gp_grpc_opts o = {.listen = c->grpc_listen, .max_message = MAX_GRPC_MESSAGE};
		rc = gp_keda_new(&keda, poller, gp_loop_base(loop));
		if (!rc)
			rc = gp_grpc_start(&grpc, gp_loop_base(loop), &o, gp_keda_methods, keda);
		if (rc) {
			gp_error("cannot listen for gRPC on %s: %s", c->grpc_listen, strerror(-rc));
			goto out;
		}
	}
	if (c->ready_file) {
		rc = gp_ready_write(c->ready_file, http ? gp_http_port(http) : -1,
				    grpc ? gp_grpc_port(grpc) : -1);
		if (rc) {
			gp_error("cannot write %s: %s", c->ready_file, strerror(-rc));
			goto out;
		}
		ready = 1;
	}
	gp_info("serving %zu queue(s): HTTP %s, gRPC %s", c->nqueues,
		c->http_listen ? c->http_listen : "off", c->grpc_listen ? c->grpc_listen : "off");
	rc = gp_loop_run(loop) ? -EIO : 0;
out:
	if (ready)
		unlink(c->ready_file);
	gp_grpc_stop(grpc);
	gp_keda_free(keda);
	gp_http_stop(http);
	gp_poller_stop(poller);
	gp_loop_free(loop);
	return rc;
}
