/* libcu.h - CUDA workloads for integration tests.
 *
 * An integration test program is both the test and its workloads: run
 * normally it is a cmocka suite; run as "<prog> --child NAME ARGS..." it
 * performs scenario NAME (a CUDA program, usually under the hook) and
 * reports "key=value" lines.  Keeping a scenario next to the assertions
 * about it keeps each test readable in one place.
 */
#ifndef GP_TESTS_LIBCU_H
#define GP_TESTS_LIBCU_H

#define __CUDA_API_VERSION_INTERNAL
#include <cuda.h>
#include <stdint.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* The simulator's cost of one context on an H100-SXM-80GB (132 SMs):
 * 256 MiB + 2 MiB per SM.  See docs/sim.md. */
#define SIM_CTX_H100 ((256ULL + 2 * 132) << 20)
/* The simulator's driver reservation per device (docs/sim.md): never
 * allocatable; NVML v2 reports it as reserved, v1 counts it as used. */
#define SIM_RESERVED (64 * MiB)

/* cuMemCreate's properties for plain device memory on device 0. */
extern const CUmemAllocationProp cu_vmm_prop0;

struct gpt_child {
	const char *name;
	int (*fn)(int argc, char **argv); /* exit code of the child */
};

/* If argv asks for a child scenario, run it and exit with its code;
 * otherwise return so main can run the suite. */
void gpt_child_dispatch(int argc, char **argv, const struct gpt_child *table);

/* Start scenario `name` of this very program with `args` (NULL-terminated,
 * may be NULL) and `env` additions; flags as for gpt_spawn. */
int gpt_spawn_child(struct gpt_proc *p, const char *name, const char *const args[],
		    const char *const env[], int flags);

/* spawn_child + wait; fails the test if the child does not exit 0. */
void gpt_run_child(struct gpt_proc *p, const char *name, const char *const args[],
		   const char *const env[], int flags);

/* In children: wait for SIGUSR1 (the test's "go on"), with a 30 s limit so
 * an abandoned child never lingers. */
void child_wait_go(void);
/* In tests: tell a child waiting in child_wait_go to go on. */
void gpt_go(const struct gpt_proc *p);

/* Fresh GPUPOOL_SIM_STATE=... and GPUPOOL_REGION=... entries, for a test
 * that wants its own machine and its own tenant (static strings, valid
 * until the next call). */
const char *gpt_env_state(void);
const char *gpt_env_region(void);

/* In children: print key=value and flush. */
void out(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* In children: abort the scenario with exit 99 if rc is an error. */
void cu_ok(CUresult rc, const char *what);
/* In children: cuInit, retain device dev's primary context, make it current. */
void cu_setup(int dev);
/* In children: cuMemGetInfo as key_free= / key_total=. */
void out_meminfo(const char *prefix);
/* In children: cuMemGetInfo's free bytes alone, as key=. */
void out_free(const char *key);
/* In children: what the tenant is charged on the current device, in the
 * budget's view under the hook: cuMemGetInfo's total - free. */
size_t cu_charged(void);
/* In children: NVML's memory figures for device `dev` (what nvidia-smi
 * shows): v1 as <v1>_total/_used/_free, v2 as <v2>_total/_reserved/_used/
 * _free.  Leaves NVML initialized, for more queries on the handle it
 * returns (the caller calls nvmlShutdown); exits 96 if NVML fails, before
 * reporting anything. */
nvmlDevice_t out_nvml_memory(unsigned dev, const char *v1, const char *v2);

#endif
