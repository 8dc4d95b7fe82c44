/* test_swap_hostcache.c - the host weight cache (src/swap/hostcache.h):
 * the budget, LRU eviction that never takes an entry being filled or read,
 * refusals, the allocator the engine plugs in, and concurrent use. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "swap/hostcache.h"

/* Reserve and fill `name` with `bytes` of `fill`. */
static void put(struct gp_hostcache *c, const char *name, uint64_t bytes, int fill)
{
	void *buf;

	assert_int_equal(gp_hostcache_reserve(c, name, bytes, &buf), 0);
	memset(buf, fill, bytes);
	assert_int_equal(gp_hostcache_ready(c, name), 0);
}

static void test_budget_and_lru(void **state)
{
	struct gp_hostcache *c;
	struct gp_hostcache_stats st;
	const void *buf;
	uint64_t bytes;

	(void)state;
	assert_int_equal(gp_hostcache_new(&c, 100, NULL), 0);
	put(c, "a", 40, 'a');
	put(c, "b", 40, 'b');
	/* a is used: b becomes the least recently used. */
	assert_int_equal(gp_hostcache_pin(c, "a", &buf, &bytes), 0);
	assert_int_equal(bytes, 40);
	assert_int_equal(((const char *)buf)[39], 'a');
	assert_int_equal(gp_hostcache_unpin(c, "a"), 0);
	put(c, "c", 40, 'c'); /* 120 > 100: b goes */
	assert_false(gp_hostcache_has(c, "b"));
	assert_true(gp_hostcache_has(c, "a"));
	assert_true(gp_hostcache_has(c, "c"));
	gp_hostcache_stats(c, &st);
	assert_int_equal(st.used, 80);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.evicted_bytes, 40);
	assert_int_equal(st.hits, 1);
	/* A miss is counted, and a whole-budget entry evicts everything. */
	assert_int_equal(gp_hostcache_pin(c, "b", &buf, &bytes), -ENOENT);
	put(c, "d", 100, 'd');
	gp_hostcache_stats(c, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.used, 100);
	gp_hostcache_free(c);
}

/* Entries being filled or read are never evicted; when they block the
 * room, the reservation fails and evicts nothing. */
static void test_pinned_and_filling_stay(void **state)
{
	struct gp_hostcache *c;
	const void *buf;
	void *fill;
	uint64_t bytes;

	(void)state;
	assert_int_equal(gp_hostcache_new(&c, 100, NULL), 0);
	put(c, "read", 30, 'r');
	put(c, "idle", 30, 'i');
	assert_int_equal(gp_hostcache_reserve(c, "fill", 30, &fill), 0);
	assert_int_equal(gp_hostcache_pin(c, "read", &buf, &bytes), 0);
	/* 90 used; 50 more needs 40 freed but only idle (30) may go. */
	assert_int_equal(gp_hostcache_reserve(c, "big", 50, &fill), -ENOSPC);
	assert_null(fill);
	assert_true(gp_hostcache_has(c, "idle")); /* nothing evicted */
	/* 40 fits by evicting idle alone. */
	assert_int_equal(gp_hostcache_reserve(c, "mid", 40, &fill), 0);
	assert_false(gp_hostcache_has(c, "idle"));
	assert_true(gp_hostcache_has(c, "read"));
	/* Being filled is not ready: no pin, no drop; abort drops it. */
	assert_int_equal(gp_hostcache_pin(c, "fill", &buf, &bytes), -ENOENT);
	assert_int_equal(gp_hostcache_drop(c, "fill"), -EBUSY);
	assert_int_equal(gp_hostcache_abort(c, "fill"), 0);
	assert_int_equal(gp_hostcache_abort(c, "fill"), -ENOENT);
	assert_int_equal(gp_hostcache_drop(c, "read"), -EBUSY); /* pinned */
	assert_int_equal(gp_hostcache_unpin(c, "read"), 0);
	assert_int_equal(gp_hostcache_unpin(c, "read"), -ENOENT);
	assert_int_equal(gp_hostcache_drop(c, "read"), 0);
	assert_int_equal(gp_hostcache_ready(c, "mid"), 0);
	assert_int_equal(gp_hostcache_ready(c, "mid"), -ENOENT); /* already */
	gp_hostcache_free(c);
}

static void test_refusals(void **state)
{
	struct gp_hostcache *c;
	char name[GP_HOSTCACHE_MAX_NAME + 2];
	void *buf;

	(void)state;
	assert_int_equal(gp_hostcache_new(&c, 100, NULL), 0);
	assert_int_equal(gp_hostcache_reserve(c, "", 1, &buf), -EINVAL);
	assert_int_equal(gp_hostcache_reserve(c, "a", 0, &buf), -EINVAL);
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	assert_int_equal(gp_hostcache_reserve(c, name, 1, &buf), -EINVAL);
	name[GP_HOSTCACHE_MAX_NAME] = '\0';
	assert_int_equal(gp_hostcache_reserve(c, name, 1, &buf), 0);
	assert_int_equal(gp_hostcache_reserve(c, name, 1, &buf), -EEXIST);
	assert_int_equal(gp_hostcache_reserve(c, "huge", 101, &buf), -ENOSPC);
	assert_int_equal(gp_hostcache_abort(c, name), 0);
	gp_hostcache_free(c);
}

/* The engine's allocator (pinned memory) is the one used, and a failure
 * of it is -ENOMEM with nothing left behind. */
struct counting {
	int allocs, frees, fail;
	size_t live;
};

static void *c_alloc(void *ctx, size_t bytes)
{
	struct counting *k = ctx;
	if (k->fail)
		return NULL;
	k->allocs++;
	k->live += bytes;
	return malloc(bytes);
}

static void c_free(void *ctx, void *buf, size_t bytes)
{
	struct counting *k = ctx;
	k->frees++;
	k->live -= bytes;
	free(buf);
}

static void test_allocator(void **state)
{
	struct counting k = {0};
	struct gp_hostcache_alloc a = {c_alloc, c_free, &k};
	struct gp_hostcache *c;
	struct gp_hostcache_stats st;
	void *buf;

	(void)state;
	assert_int_equal(gp_hostcache_new(&c, 1000, &a), 0);
	put(c, "a", 10, 1);
	put(c, "b", 20, 2);
	assert_int_equal(k.live, 30);
	k.fail = 1;
	assert_int_equal(gp_hostcache_reserve(c, "c", 5, &buf), -ENOMEM);
	gp_hostcache_stats(c, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.used, 30);
	gp_hostcache_free(c);
	assert_int_equal(k.allocs, 2);
	assert_int_equal(k.frees, 2);
	assert_int_equal(k.live, 0);
}

/* Threads reserving, pinning and dropping at once keep the books: the
 * budget is never exceeded and what a pin hands out is what was filled. */
static struct gp_hostcache *shared;

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (int i = 0; i < 2000; i++) {
		char name[16];
		int m = (int)(rand_r(&seed) % 12);
		const void *buf;
		uint64_t bytes;
		void *fill;
		struct gp_hostcache_stats st;

		snprintf(name, sizeof name, "m%d", m);
		if (gp_hostcache_pin(shared, name, &buf, &bytes) == 0) {
			for (uint64_t b = 0; b < bytes; b += 97)
				if (((const unsigned char *)buf)[b] != (unsigned char)m)
					return (void *)1;
			if (gp_hostcache_unpin(shared, name) != 0)
				return (void *)1;
		} else if (gp_hostcache_reserve(shared, name, 1000u + 100u * (unsigned)m,
						&fill) == 0) {
			memset(fill, m, 1000u + 100u * (unsigned)m);
			if (gp_hostcache_ready(shared, name) != 0)
				return (void *)1;
		}
		gp_hostcache_stats(shared, &st);
		if (st.used > st.budget)
			return (void *)1;
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[4];
	void *rc;

	(void)state;
	assert_int_equal(gp_hostcache_new(&shared, 8000, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rc), 0);
		assert_null(rc);
	}
	gp_hostcache_free(shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_and_lru),
		cmocka_unit_test(test_pinned_and_filling_stay),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_allocator),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
