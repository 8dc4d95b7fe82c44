/* test_region.c - the shared accounting region: budgets across threads and
 * processes, reclaiming dead processes, charges that no stopped or dead
 * lock holder can block, and refusing foreign files. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/llock.h"
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
	d = open_dev(&r, 2 * GiB);
	assert_true(d >= 0);
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
	assert_int_equal(gp_region_open(&r, "/nonexistent-dir/region"), -ENOENT);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
