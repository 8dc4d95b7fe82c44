/* work.h - blocking work off the event loop, its end back on the loop.
 *
 * A daemon's event loop must never wait on the network: a handler that
 * has to (an API call that may take seconds) hands the job to a pool of
 * threads and defers its reply (gp_http_defer).  The job's `run` executes
 * on a worker; its `done` then executes on the loop's thread, where it may
 * touch what the loop owns and reply.  Jobs start in the order submitted.
 */
#ifndef GP_NET_WORK_H
#define GP_NET_WORK_H

struct event_base;
struct gp_work;

/* A pool of `threads` workers whose completions run on `base`.  Returns 0
 * or a negative errno. */
int gp_work_new(struct gp_work **out, struct event_base *base, unsigned threads)
	__attribute__((warn_unused_result));

/* Queue a job: run(arg) on a worker, then done(arg) on the loop (done may
 * be NULL).  Returns 0, or -ENOMEM (nothing queued: the caller still owns
 * arg). */
int gp_work_submit(struct gp_work *w, void (*run)(void *arg), void (*done)(void *arg), void *arg)
	__attribute__((warn_unused_result));

/* Jobs queued or running now. */
unsigned gp_work_busy(struct gp_work *w);

/* Finish every job queued (nothing submitted is lost), run their done
 * callbacks, stop the workers and free the pool.  Call from the loop's
 * thread, with the loop stopped. */
void gp_work_free(struct gp_work *w);

#endif
