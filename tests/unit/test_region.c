/* test_region.c - the shared accounting region: budgets across threads and
 * processes, reclaiming dead processes, charges that no stopped or dead
 * lock holder can block, refusing foreign files; and the observers' reader
 * (region/read.h): live and dead processes through their leases, from a
 * process that only reads, never disturbing the writers, and what it makes
 * of short, foreign and hostile files. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/lease.h"
#include "common/llock.h"
#include "region/read.h"
#include "region/region.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define UUID "GPU-00000000-1111-2222-3333-444444444444"

static char path[256];

static int setup(void **state)
{
	static int n;
	const char *dir = getenv("TMPDIR");

	(void)state;
	snprintf(path, sizeof path, "%s/region.%d.%d", dir ? dir : "/tmp", (int)getpid(), n++);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* Open + attach + register the test GPU with `limit`. */
static int open_dev(struct gp_region *r, uint64_t limit)
{
	*r = (struct gp_region)GP_REGION_INIT;
	assert_int_equal(gp_region_open(r, path), 0);
	assert_int_equal(gp_region_attach(r), 0);
	return gp_region_device(r, UUID, limit, 80 * GiB);
}

static void test_budget(void **state)
{
	struct gp_region r;
	uint64_t limit, used;
	int d;

	(void)state;
	uint64_t t0 = gp_now_ns(), registered;
	d = open_dev(&r, 2 * GiB);
	assert_true(d >= 0);
	/* Registration stamps the entry, once; no activity yet. */
	registered = r.hdr->dev[d].registered_ns;
	assert_true(registered >= t0 && registered <= gp_now_ns());
	assert_int_equal(r.hdr->dev[d].last_launch_ns, 0);
	assert_int_equal(r.hdr->dev[d].last_copy_ns, 0);
	assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
	assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
	assert_int_equal(gp_region_charge(&r, d, 1, 0), -ENOMEM);
	assert_int_equal(gp_region_charge(&r, d, UINT64_MAX, 0), -ENOMEM);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(limit, 2 * GiB);
	assert_int_equal(used, 2 * GiB);
	assert_int_equal(r.hdr->dev[d].refused, 2);
	/* Forced charges (memory the driver already took) pass the budget. */
	assert_int_equal(gp_region_charge(&r, d, MiB, 1), 0);
	gp_region_uncharge(&r, d, MiB);
	gp_region_uncharge(&r, d, GiB);
	/* Giving back more than we hold stops at zero. */
	gp_region_uncharge(&r, d, 5 * GiB);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 0);
	assert_int_equal(r.hdr->dev[d].peak, 2 * GiB + MiB);
	/* The same GPU again: same entry; another limit: refused. */
	assert_int_equal(gp_region_device(&r, UUID, 2 * GiB, 80 * GiB), d);
	assert_int_equal(r.hdr->dev[d].registered_ns, registered);
	assert_int_equal(gp_region_device(&r, UUID, 3 * GiB, 80 * GiB), -EEXIST);
	assert_int_equal(gp_region_find(&r, UUID), d);
	assert_int_equal(gp_region_find(&r, "GPU-nope"), -1);
	gp_shm_close(&r.shm);
}

static void test_unlimited(void **state)
{
	struct gp_region r;
	int d;

	(void)state;
	d = open_dev(&r, 0);
	assert_int_equal(gp_region_charge(&r, d, 100 * GiB, 0), 0);
	gp_region_uncharge(&r, d, 100 * GiB);
	gp_shm_close(&r.shm);
}

struct storm {
	struct gp_region *r;
	int dev;
	unsigned got;
};

static void *storm_thread(void *arg)
{
	struct storm *s = arg;

	while (gp_region_charge(s->r, s->dev, MiB, 0) == 0)
		s->got++;
	return NULL;
}

/* 16 threads grab 1 MiB at a time until refused: together they get exactly
 * the budget, never a byte more. */
static void test_threads_never_over_admit(void **state)
{
	struct gp_region r;
	struct storm s[16];
	pthread_t t[16];
	unsigned total = 0;
	uint64_t limit, used;
	int d;

	(void)state;
	d = open_dev(&r, 1000 * MiB);
	for (int i = 0; i < 16; i++) {
		s[i] = (struct storm){.r = &r, .dev = d};
		assert_int_equal(pthread_create(&t[i], NULL, storm_thread, &s[i]), 0);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		total += s[i].got;
	}
	assert_int_equal(total, 1000);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 1000 * MiB);
	gp_shm_close(&r.shm);
}

/* Four processes churn charges of random sizes on one region for a while;
 * after every charge the total is within the budget, and at the end
 * everything was given back. */
static void test_processes_never_over_admit(void **state)
{
	struct gp_region r;
	uint64_t limit, used;
	pid_t kids[4];
	int d, status;

	(void)state;
	d = open_dev(&r, 512 * MiB);
	for (int k = 0; k < 4; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			struct gp_region c = GP_REGION_INIT;
			uint64_t held[32] = {0};
			unsigned seed = (unsigned)getpid();
			int bad = 0;

			if (gp_region_open(&c, path) || gp_region_attach(&c))
				_exit(2);
			for (int i = 0; i < 20000; i++) {
				int slot = rand_r(&seed) % 32;
				uint64_t lim, u;
				if (held[slot]) {
					gp_region_uncharge(&c, d, held[slot]);
					held[slot] = 0;
				} else {
					uint64_t sz = (uint64_t)(rand_r(&seed) % 64 + 1) * MiB;
					if (gp_region_charge(&c, d, sz, 0) == 0)
						held[slot] = sz;
				}
				gp_region_usage(&c, d, &lim, &u);
				bad |= u > lim;
			}
			for (int s = 0; s < 32; s++)
				gp_region_uncharge(&c, d, held[s]);
			_exit(bad ? 3 : 0);
		}
	}
	for (int k = 0; k < 4; k++) {
		assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 0);
	gp_shm_close(&r.shm);
}

/* A SIGKILLed process's charge comes back on the next charge that would
 * otherwise fail, with no daemon involved. */
static void test_dead_process_reclaimed(void **state)
{
	struct gp_region r;
	uint64_t limit, used;
	int d, p[2], status;
	char c;
	pid_t kid;

	(void)state;
	d = open_dev(&r, 2 * GiB);
	assert_int_equal(pipe(p), 0);
	kid = fork();
	if (kid == 0) {
		struct gp_region k = GP_REGION_INIT;
		if (gp_region_open(&k, path) || gp_region_attach(&k) ||
		    gp_region_charge(&k, d, 3 * GiB / 2, 0))
			_exit(2);
		(void)!write(p[1], "x", 1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(p[0], &c, 1), 1);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 3 * GiB / 2);
	kill(kid, SIGKILL);
	waitpid(kid, &status, 0);
	uint64_t t0 = gp_now_ns();
	assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
	assert_true(gp_now_ns() - t0 < 1000000000ULL);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, GiB);
	close(p[0]);
	close(p[1]);
	gp_shm_close(&r.shm);
}

/* A stopped process (SIGSTOP, not dead) holding the region's lock must not
 * make anyone else's charges wait: charging and uncharging take no lock.
 * Registering a new device does wait for a live holder (the rule in
 * docs/hook.md); it goes on as soon as the holder continues. */
static void test_stopped_holder_blocks_no_charge(void **state)
{
	struct gp_region r;
	uint64_t limit, used, t0;
	int d, status, p[2];
	char c;
	pid_t kid;

	(void)state;
	d = open_dev(&r, 4 * GiB);
	assert_int_equal(pipe(p), 0);
	kid = fork();
	if (kid == 0) {
		struct gp_region k = GP_REGION_INIT;
		uint32_t free_word = 0;
		if (gp_region_open(&k, path) || gp_region_attach(&k) ||
		    gp_region_charge(&k, d, GiB, 0))
			_exit(2);
		/* Take the lock as this process, exactly as the region does. */
		if (!__atomic_compare_exchange_n(&k.hdr->lock.word, &free_word, k.me, 0,
						 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			_exit(3);
		if (write(p[1], "x", 1) != 1)
			_exit(4);
		raise(SIGSTOP);
		gp_llock_unlock(&k.hdr->lock.word);
		_exit(0);
	}
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(waitpid(kid, &status, WUNTRACED), kid);
	assert_true(WIFSTOPPED(status));
	t0 = gp_now_ns();
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
		gp_region_uncharge(&r, d, GiB);
	}
	assert_int_equal(gp_region_charge(&r, d, 4 * GiB, 0), -ENOMEM); /* its 1 GiB counts */
	assert_int_equal(gp_region_sweep(&r, 0), 0); /* stopped is alive */
	assert_true(gp_now_ns() - t0 < 500000000ULL);
	kill(kid, SIGCONT);
	/* Registration waits for the holder, which now goes on and unlocks. */
	assert_true(gp_region_device(&r, "GPU-ffffffff-1111-2222-3333-444444444444", GiB,
				     80 * GiB) >= 0);
	assert_int_equal(waitpid(kid, &status, 0), kid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	gp_region_sweep(&r, 0);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 0);
	close(p[0]);
	close(p[1]);
	gp_shm_close(&r.shm);
}

/* A process dies holding the lock: the next registration takes it over
 * after the probe interval, and charges never noticed. */
static void test_dead_holder_taken_over(void **state)
{
	struct gp_region r;
	uint64_t limit, used;
	int d, status;
	pid_t kid;

	(void)state;
	d = open_dev(&r, 4 * GiB);
	assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
	kid = fork();
	if (kid == 0) {
		struct gp_region k = GP_REGION_INIT;
		uint32_t free_word = 0;
		if (gp_region_open(&k, path) || gp_region_attach(&k))
			_exit(2);
		if (!__atomic_compare_exchange_n(&k.hdr->lock.word, &free_word, k.me, 0,
						 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			_exit(3);
		raise(SIGKILL);
	}
	waitpid(kid, &status, 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
	assert_true(gp_region_device(&r, "GPU-ffffffff-1111-2222-3333-444444444444", GiB,
				     80 * GiB) >= 0);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 2 * GiB);
	gp_shm_close(&r.shm);
}

/* The dead lock holder's slot is taken by a new process before anyone
 * else looks: it must recognise the holder as its slot's previous owner
 * and take the lock over, not wait for itself. */
static void test_new_owner_of_dead_holders_slot(void **state)
{
	struct gp_region r;
	uint64_t limit, used;
	int d, status;
	pid_t kid;

	(void)state;
	d = open_dev(&r, 4 * GiB);
	kid = fork();
	if (kid == 0) {
		struct gp_region k = GP_REGION_INIT;
		uint32_t free_word = 0;
		if (gp_region_open(&k, path) || gp_region_attach(&k) ||
		    gp_region_charge(&k, d, GiB, 0))
			_exit(2);
		if (!__atomic_compare_exchange_n(&k.hdr->lock.word, &free_word, k.me, 0,
						 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			_exit(3);
		raise(SIGKILL);
	}
	waitpid(kid, &status, 0);
	assert_true(WIFSIGNALED(status));
	kid = fork();
	if (kid == 0) {
		struct gp_region k = GP_REGION_INIT;
		/* Slot 0 is the test's; the dead child had slot 1; we get it. */
		if (gp_region_open(&k, path) || gp_region_attach(&k) || k.slot != 1)
			_exit(2);
		if (gp_region_charge(&k, d, 2 * GiB, 0))
			_exit(3);
		_exit(0);
	}
	waitpid(kid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The dead child's 1 GiB was reclaimed when its slot was retaken;
	 * the second child's 2 GiB goes at the next sweep. */
	gp_region_sweep(&r, 0);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 0);
	gp_shm_close(&r.shm);
}

/* After fork the child takes a slot of its own; the parent's stays live. */
static void test_fork_child_slot(void **state)
{
	struct gp_region r;
	int d, status;
	pid_t kid;

	(void)state;
	d = open_dev(&r, 4 * GiB);
	assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
	kid = fork();
	if (kid == 0) {
		int parent = r.slot;
		if (gp_region_forked(&r) || r.slot != -1 || gp_region_attach(&r))
			_exit(2);
		if (r.slot == parent)
			_exit(3);
		/* The parent is alive: a sweep must not reclaim it. */
		if (gp_region_sweep(&r, 0) != 0)
			_exit(4);
		if (gp_region_charge(&r, d, GiB, 0))
			_exit(5);
		_exit(0); /* exits holding 1 GiB: reclaimed below */
	}
	waitpid(kid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(gp_region_sweep(&r, 0), 1);
	uint64_t limit, used;
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, GiB);
	gp_shm_close(&r.shm);
}

static void test_foreign_files(void **state)
{
	struct gp_region r = GP_REGION_INIT;
	int fd;

	(void)state;
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a region", 12), 12);
	close(fd);
	assert_int_equal(gp_region_open(&r, path), -EPROTO);

	/* Right size, wrong magic. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(ftruncate(fd, sizeof(struct gp_region_hdr)), 0);
	close(fd);
	assert_int_equal(gp_region_open(&r, path), -EPROTO);

	/* A region of the previous layout (version 2: 128-byte device
	 * entries, no id), as its library left it; and a file of this size
	 * that says version 2.  Neither is used. */
	{
		struct gp_region_hdr *h = calloc(1, sizeof *h);
		const uint32_t v2_size = (uint32_t)sizeof *h - 24 * GP_REGION_MAX_DEVS - 8;

		assert_non_null(h);
		h->magic = GP_REGION_MAGIC;
		h->version = 2;
		h->size = v2_size;
		h->max_devs = GP_REGION_MAX_DEVS;
		h->max_procs = GP_REGION_MAX_PROCS;
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_int_equal(write(fd, h, v2_size), (ssize_t)v2_size);
		close(fd);
		assert_int_equal(gp_region_open(&r, path), -EPROTO);
		h->size = (uint32_t)sizeof *h;
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_int_equal(write(fd, h, sizeof *h), (ssize_t)sizeof *h);
		close(fd);
		assert_int_equal(gp_region_open(&r, path), -EPROTO);
		free(h);
	}
	assert_int_equal(gp_region_open(&r, "/nonexistent-dir/region"), -ENOENT);
}

/* A new region gets a random id, never 0, that stays with the file: the
 * node file names the tenant by it. */
static void test_id(void **state)
{
	struct gp_region a = GP_REGION_INIT, b = GP_REGION_INIT, again = GP_REGION_INIT;
	uint64_t id;

	(void)state;
	assert_int_equal(gp_region_open(&a, path), 0);
	id = a.hdr->id;
	assert_true(id != 0);
	assert_int_equal(gp_region_open(&again, path), 0);
	assert_true(again.hdr->id == id);
	assert_int_equal(gp_region_open(&b, NULL), 0);
	assert_true(b.hdr->id != 0);
	assert_true(b.hdr->id != id);
	/* Compute figures start at zero. */
	for (unsigned d = 0; d < GP_REGION_MAX_DEVS; d++)
		assert_true(!a.hdr->dev[d].compute_ns && !a.hdr->dev[d].throttled_ns &&
			    !a.hdr->dev[d].pace_ns && !a.hdr->dev[d].core_limit);
	gp_shm_close(&again.shm);
	gp_shm_close(&b.shm);
	gp_shm_close(&a.shm);
}


/* --- the observers' reader (region/read.h) ------------------------------- */

static void exit_now(int sig)
{
	(void)sig;
	_exit(0);
}

/* A child that attaches, charges `bytes` on `d`, says so on `fd` and waits
 * for a signal: SIGUSR1 makes it exit normally, holding its charge. */
static pid_t holder(int d, uint64_t bytes, int fd)
{
	pid_t kid = fork();

	assert_true(kid >= 0);
	if (kid == 0) {
		struct gp_region k = GP_REGION_INIT;
		signal(SIGUSR1, exit_now);
		if (gp_region_open(&k, path) || gp_region_attach(&k) ||
		    gp_region_charge(&k, (unsigned)d, bytes, 0))
			_exit(2);
		if (write(fd, "x", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	return kid;
}

/* gp_region_read of `path` in a child that opened it read-only and never
 * used the region: the copy goes to `out` (shared memory), the result is
 * the child's exit code (the negated errno, 0 on success). */
static int read_as_stranger(struct gp_region_copy *out)
{
	int status, fd, rc;
	pid_t kid = fork();

	assert_true(kid >= 0);
	if (kid == 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			_exit(100);
		rc = gp_region_read(fd, out);
		close(fd);
		_exit(-rc);
	}
	assert_int_equal(waitpid(kid, &status, 0), kid);
	assert_true(WIFEXITED(status));
	return -WEXITSTATUS(status);
}

static struct gp_region_copy *shared_copy(void)
{
	void *p = mmap(NULL, sizeof(struct gp_region_copy), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

/* Live processes are those with an ACTIVE slot whose lease is held: the
 * test's own (through another open file description than the reader's), a
 * child that runs; not a child that exited, nor one SIGKILLed, though both
 * still hold their charges in the file.  A reader that only opened the
 * file read-only finds them, and the sums count only the living. */
static void test_read_live_and_dead(void **state)
{
	struct gp_region_copy *c = shared_copy();
	struct gp_region r;
	int d, p[2], status;
	pid_t alive, exited, killed;
	char x;

	(void)state;
	d = open_dev(&r, 0);
	assert_int_equal(gp_region_charge(&r, d, GiB, 0), 0);
	assert_int_equal(pipe(p), 0);
	/* All three attach while all live (a dead one's slot would be the
	 * next one's), then one exits and one is killed. */
	alive = holder(d, 2 * GiB, p[1]);
	assert_int_equal(read(p[0], &x, 1), 1);
	exited = holder(d, 4 * GiB, p[1]);
	assert_int_equal(read(p[0], &x, 1), 1);
	killed = holder(d, 8 * GiB, p[1]);
	assert_int_equal(read(p[0], &x, 1), 1);
	kill(exited, SIGUSR1);
	assert_int_equal(waitpid(exited, &status, 0), exited);
	assert_true(WIFEXITED(status));
	kill(killed, SIGKILL);
	assert_int_equal(waitpid(killed, &status, 0), killed);
	assert_true(WIFSIGNALED(status));

	assert_int_equal(read_as_stranger(c), 0);
	assert_int_equal(c->hdr.magic, GP_REGION_MAGIC);
	assert_int_equal(c->hdr.ndevs, 1);
	assert_string_equal(c->hdr.dev[d].uuid, UUID);
	assert_int_equal(c->hdr.dev[d].used, 15 * GiB); /* the dead still charged */
	assert_int_equal(c->nlive, 2);
	assert_int_equal(c->live_used[d], 3 * GiB);
	/* Only the holders' slots are read, and they are the living. */
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		const struct gp_region_proc *q = &c->hdr.proc[i];

		if (gp_region_copy_live(c, i))
			assert_true(q->state == GP_PROC_ACTIVE &&
				    (q->pid == (int32_t)getpid() || q->pid == (int32_t)alive));
	}
	assert_true(gp_region_copy_live(c, (unsigned)r.slot));

	/* Once the dead are reclaimed the reader sees the same living. */
	assert_int_equal(gp_region_sweep(&r, 0), 2);
	assert_int_equal(read_as_stranger(c), 0);
	assert_int_equal(c->nlive, 2);
	assert_int_equal(c->hdr.dev[d].used, 3 * GiB);
	assert_int_equal(c->live_used[d], 3 * GiB);

	kill(alive, SIGKILL);
	waitpid(alive, &status, 0);
	assert_int_equal(read_as_stranger(c), 0);
	assert_int_equal(c->nlive, 1);
	assert_int_equal(c->live_used[d], GiB);
	close(p[0]);
	close(p[1]);
	munmap(c, sizeof *c);
	gp_shm_close(&r.shm);
}

/* A reader takes nothing: while one reads over and over, writers attach,
 * charge, die and are reclaimed as usual; and a reader that is itself a
 * holder (this process) can open, read and close the file without its own
 * lease going (OFD locks live with their open file description, so closing
 * another descriptor of the file drops nothing). */
static void test_read_disturbs_nobody(void **state)
{
	struct gp_region_copy *c = shared_copy();
	struct gp_region r;
	uint64_t limit, used;
	int d, fd, status;
	pid_t reader;

	(void)state;
	d = open_dev(&r, 4 * GiB);
	reader = fork();
	assert_true(reader >= 0);
	if (reader == 0) {
		struct gp_region_copy *mine = malloc(sizeof *mine);
		for (int i = 0; i < 300; i++) {
			int rfd = open(path, O_RDONLY | O_CLOEXEC);
			if (!mine || rfd < 0 || gp_region_read(rfd, mine) != 0 || mine->nlive < 1)
				_exit(1);
			close(rfd);
		}
		_exit(0);
	}
	for (int i = 0; i < 20; i++) {
		pid_t kid = fork();
		assert_true(kid >= 0);
		if (kid == 0) {
			struct gp_region k = GP_REGION_INIT;
			if (gp_region_open(&k, path) || gp_region_attach(&k) ||
			    gp_region_charge(&k, (unsigned)d, GiB, 0))
				_exit(2);
			_exit(0);
		}
		assert_int_equal(waitpid(kid, &status, 0), kid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		/* Each dead child is reclaimed: its lease is free to take. */
		assert_int_equal(gp_region_sweep(&r, 0), 1);
	}
	assert_int_equal(waitpid(reader, &status, 0), reader);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	gp_region_usage(&r, d, &limit, &used);
	assert_int_equal(used, 0);

	/* Read through a second descriptor of our own, close it: our lease
	 * stays, as a stranger sees. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(gp_region_read(fd, c), 0);
	assert_true(gp_region_copy_live(c, (unsigned)r.slot));
	close(fd);
	assert_int_equal(read_as_stranger(c), 0);
	assert_true(gp_region_copy_live(c, (unsigned)r.slot));
	assert_int_equal(c->nlive, 1);
	munmap(c, sizeof *c);
	gp_shm_close(&r.shm);
}

/* Write `len` bytes of `data` as the whole of `path`. */
static void write_file(const void *data, size_t len)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* gp_region_read of `path` here. */
static int read_path(struct gp_region_copy *c)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	assert_true(fd >= 0);
	rc = gp_region_read(fd, c);
	close(fd);
	return rc;
}

/* A valid region image nobody uses, made by gp_region_open. */
static struct gp_region_hdr *fresh_image(void)
{
	struct gp_region r = GP_REGION_INIT;
	struct gp_region_hdr *h = malloc(sizeof *h);

	assert_non_null(h);
	assert_int_equal(gp_region_open(&r, NULL), 0);
	memcpy(h, r.hdr, sizeof *h);
	gp_shm_close(&r.shm);
	return h;
}

/* Files that are no region yet: empty, cut short, or the right size with
 * the magic not written -> -ENODATA.  Files that are not regions of this
 * version -> -EPROTO, whatever else they hold. */
static void test_read_short_and_foreign(void **state)
{
	struct gp_region_copy *c = malloc(sizeof *c);
	struct gp_region_hdr *img = fresh_image(), *bad = malloc(sizeof *bad);
	uint8_t *big = calloc(1, sizeof *img + 1);
	int p[2];

	(void)state;
	assert_non_null(c);
	assert_non_null(bad);
	assert_non_null(big);
	write_file("", 0);
	assert_int_equal(read_path(c), -ENODATA);
	write_file(img, 100);
	assert_int_equal(read_path(c), -ENODATA);
	write_file(img, sizeof *img - 1);
	assert_int_equal(read_path(c), -ENODATA);
	memcpy(bad, img, sizeof *img);
	bad->magic = 0; /* sized and being initialised */
	write_file(bad, sizeof *bad);
	assert_int_equal(read_path(c), -ENODATA);
	memset(bad, 0, sizeof *bad);
	write_file(bad, sizeof *bad);
	assert_int_equal(read_path(c), -ENODATA);

	/* The image itself reads fine; then one field wrong at a time. */
	write_file(img, sizeof *img);
	assert_int_equal(read_path(c), 0);
	assert_int_equal(c->nlive, 0);
	assert_int_equal(memcmp(&c->hdr, img, offsetof(struct gp_region_hdr, proc)), 0);
	for (int k = 0; k < 9; k++) {
		memcpy(bad, img, sizeof *img);
		switch (k) {
		case 0: bad->magic ^= 1; break;
		case 1: bad->version = 2; break; /* the layout before compute */
		case 2: bad->size = (uint32_t)sizeof *bad - 8; break;
		case 3: bad->max_devs = 8; break;
		case 4: bad->max_procs = 4096; break;
		case 5: bad->ndevs = GP_REGION_MAX_DEVS + 1; break;
		case 6: memset(bad->dev[7].uuid, 'G', GP_REGION_UUID_LEN); break;
		case 7: bad->proc[1023].state = 7; break;
		case 8: memset(bad, 0xa5, sizeof *bad); break; /* garbage */
		}
		write_file(bad, sizeof *bad);
		if (k == 7) {
			/* A slot is read only while its lease is held: a bad
			 * state nobody holds is never looked at. */
			int holder = open(path, O_RDWR | O_CLOEXEC);

			assert_int_equal(read_path(c), 0);
			assert_true(holder >= 0);
			assert_int_equal(gp_lease_take(holder, 1023), 0);
			assert_int_equal(read_path(c), -EPROTO);
			close(holder);
			continue;
		}
		assert_int_equal(read_path(c), -EPROTO);
	}
	/* Longer than a region, even with a region at its start. */
	memcpy(big, img, sizeof *img);
	write_file(big, sizeof *img + 1);
	assert_int_equal(read_path(c), -EPROTO);
	/* Not a file at all. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(gp_region_read(p[0], c), -EPROTO);
	close(p[0]);
	close(p[1]);
	assert_int_equal(gp_region_read(-1, c), -EBADF);
	free(big);
	free(bad);
	free(img);
	free(c);
}

/* Leases held in any pattern -- single slots and ranges, taken through
 * many open file descriptions in shuffled order (the kernel then reports
 * them in no particular order), a lock to the end of the file -- are found
 * exactly; only ACTIVE slots among them are live; per-device sums of the
 * living saturate instead of wrapping. */
static void test_read_leases_and_sums(void **state)
{
	enum { NFD = 8 };
	struct gp_region_copy *c = malloc(sizeof *c);
	struct gp_region_hdr *img = fresh_image();
	static uint8_t want[GP_REGION_MAX_PROCS];
	unsigned order[GP_REGION_MAX_PROCS], seed = 7, nwant = 0;
	int fds[NFD];
	struct flock fl;

	(void)state;
	assert_non_null(c);
	/* Every slot active; procs 3 and 700 hold nearly everything on dev 0. */
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		img->proc[i].state = GP_PROC_ACTIVE;
		img->proc[i].pid = (int32_t)(1000 + i);
		img->proc[i].used[1] = i;
	}
	img->proc[3].used[0] = UINT64_MAX - 10;
	img->proc[700].used[0] = 100;
	img->proc[5].state = GP_PROC_FREE; /* held below, but free: not live */
	write_file(img, sizeof *img);
	for (int k = 0; k < NFD; k++) {
		fds[k] = open(path, O_RDWR | O_CLOEXEC);
		assert_true(fds[k] >= 0);
	}
	/* A random third of the slots, in random order, from random
	 * descriptions; 3, 5 and 700 among them. */
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		order[i] = i;
		want[i] = rand_r(&seed) % 3 == 0 || i == 3 || i == 5 || i == 700;
	}
	for (unsigned i = GP_REGION_MAX_PROCS - 1; i > 0; i--) {
		unsigned j = (unsigned)rand_r(&seed) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	/* Slots 900-1023 by one lock to the end of the file, 20-39 by one
	 * range lock: they are all held. */
	for (unsigned i = 900; i < GP_REGION_MAX_PROCS; i++)
		want[i] = 1;
	for (unsigned i = 20; i < 40; i++)
		want[i] = 1;
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		unsigned s = order[i];
		if (want[s] && s < 900 && (s < 20 || s >= 40))
			assert_int_equal(gp_lease_take(fds[rand_r(&seed) % NFD], s), 0);
	}
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = GP_LEASE_BASE + 900;
	fl.l_len = 0;
	assert_int_equal(fcntl(fds[1], F_OFD_SETLK, &fl), 0);
	fl.l_start = GP_LEASE_BASE + 20;
	fl.l_len = 20;
	assert_int_equal(fcntl(fds[2], F_OFD_SETLK, &fl), 0);
	/* A lock below the lease range is no lease. */
	fl.l_start = GP_LEASE_BASE - 4;
	fl.l_len = 4;
	assert_int_equal(fcntl(fds[3], F_OFD_SETLK, &fl), 0);

	assert_int_equal(read_path(c), 0); /* another description than the holders' */
	for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++) {
		int live = want[i] && i != 5;
		assert_int_equal(gp_region_copy_live(c, i), live);
		nwant += (unsigned)live;
	}
	assert_int_equal(c->nlive, nwant);
	assert_int_equal(c->live_used[0], UINT64_MAX); /* saturated, not 89 */
	{
		uint64_t sum = 0;
		for (unsigned i = 0; i < GP_REGION_MAX_PROCS; i++)
			if (want[i] && i != 5)
				sum += i;
		assert_int_equal(c->live_used[1], sum);
	}
	assert_int_equal(c->live_used[2], 0);
	for (int k = 0; k < NFD; k++)
		close(fds[k]);
	/* Every lease went with its description. */
	assert_int_equal(read_path(c), 0);
	assert_int_equal(c->nlive, 0);
	assert_int_equal(c->live_used[0], 0);
	free(img);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlimited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_never_over_admit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_processes_never_over_admit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_process_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stopped_holder_blocks_no_charge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_holder_taken_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_owner_of_dead_holders_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_child_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_live_and_dead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_disturbs_nobody, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_short_and_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_leases_and_sums, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
