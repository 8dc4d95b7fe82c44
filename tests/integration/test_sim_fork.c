/* test_sim_fork.c - fork and the simulated driver, as with the real one:
 * the child of a process that initialised CUDA cannot use it
 * (CUDA_ERROR_NOT_INITIALIZED), a child whose parent never did can, with a
 * process slot of its own, and NVML keeps working in either. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cuda.h>

#include "common/nvml.h"
#include "integration/libtest.h"

#define CU(x) assert_int_equal((x), CUDA_SUCCESS)

static void test_child_of_uninitialised_parent(void **st)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[] = {path, "nvml-init", "fork-init", NULL};
	struct gpt_proc p;

	(void)st;
	assert_int_equal(gpt_run(&p, argv, NULL, 0, 20000), 0);
	assert_int_equal(gpt_get_u64(&p, "nvml"), NVML_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "child_init"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "child_alloc"), CUDA_SUCCESS);
	free(path);
}

static void test_child_of_initialised_parent(void **st)
{
	char *path = gpt_build_path("tests/integration/simwl");
	const char *argv[] = {path, "init", "fork-alloc", "fork-init", NULL};
	struct gpt_proc p;

	(void)st;
	assert_int_equal(gpt_run(&p, argv, NULL, 0, 20000), 0);
	assert_int_equal(gpt_get_u64(&p, "init"), CUDA_SUCCESS);
	assert_int_equal(gpt_get_u64(&p, "child"), CUDA_ERROR_NOT_INITIALIZED);
	assert_int_equal(gpt_get_u64(&p, "child_init"), CUDA_ERROR_NOT_INITIALIZED);
	free(path);
}

/* The same in this process: the parent carries on; the child's calls all
 * fail cleanly while its NVML still answers. */
static void test_fork_here(void **st)
{
	CUcontext c;
	CUdeviceptr p;
	pid_t pid;
	int status;

	(void)st;
	CU(cuInit(0));
	CU(cuDevicePrimaryCtxRetain(&c, 0));
	CU(cuCtxSetCurrent(c));
	assert_int_equal(nvmlInit(), NVML_SUCCESS);
	pid = fork();
	if (pid == 0) {
		unsigned n = 0;
		int bad = cuInit(0) != CUDA_ERROR_NOT_INITIALIZED ||
			  cuMemAlloc(&p, 16) != CUDA_ERROR_NOT_INITIALIZED ||
			  cuCtxSynchronize() != CUDA_ERROR_NOT_INITIALIZED ||
			  nvmlDeviceGetCount(&n) != NVML_SUCCESS || n != 1;
		_exit(bad);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	CU(cuMemAlloc(&p, 16));
	CU(cuMemFree(p));
	nvmlShutdown();
	CU(cuDevicePrimaryCtxRelease(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_child_of_uninitialised_parent),
		cmocka_unit_test(test_child_of_initialised_parent),
		cmocka_unit_test(test_fork_here),
	};
	char *state = gpt_tmp_path("state");
	int rc;

	unsetenv("GPUPOOL_SIM_GPUS");
	unsetenv("CUDA_VISIBLE_DEVICES");
	setenv("GPUPOOL_SIM_STATE", state, 1);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(state);
	return rc;
}
