/* simctl.c - gpupool-simctl: inject faults into a simulated machine, and
 * report the device time each of its processes has used.
 *
 * Tests of whatever watches GPU health (the node agent) need faults to
 * happen on demand: an Xid error, ECC errors, a GPU falling off the bus.
 * This program makes them happen in the machine named by GPUPOOL_SIM_STATE,
 * through gp__sim_fault of the simulated libcuda.so.1 (fault.h), so every
 * process of that machine sees them.  Tests and benchmarks of compute
 * shares need each process's real device time as ground truth: `busy`
 * prints it, exactly, from the machine's timelines (timeline.h).  A
 * private machine (no GPUPOOL_SIM_STATE) would be this process's alone, so
 * it is refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "sim/fault.h"
#include "sim/timeline.h"

#define EXIT_USAGE 2
#define XID_MAX 65535u
#define ECC_MAX 1000000u

static const char usage_text[] =
	"usage: gpupool-simctl COMMAND ARGS...\n"
	"\n"
	"Inject a fault into the simulated machine of GPUPOOL_SIM_STATE (and\n"
	"GPUPOOL_SIM_GPUS, as its other processes have them): every process\n"
	"using the machine sees it.  Or report its processes' device time.\n"
	"\n"
	"commands:\n"
	"  xid INDEX CODE        Xid error CODE (1-65535) on GPU INDEX: an\n"
	"                        nvmlEventTypeXidCriticalError event, eventData CODE\n"
	"  ecc INDEX corrected|uncorrected COUNT\n"
	"                        COUNT (1-1000000) ECC errors added to the GPU's\n"
	"                        counters, and one single-bit (corrected) or\n"
	"                        double-bit (uncorrected) ECC event\n"
	"  lose INDEX            the GPU falls off the bus: every NVML query on it\n"
	"                        returns NVML_ERROR_GPU_IS_LOST (no event: inject\n"
	"                        `xid INDEX 79` too for what a real driver reports)\n"
	"  restore INDEX         the GPU is back (as after a reset)\n"
	"  busy [PID]            one line `pid=P gpu=I busy_ns=N` per live process\n"
	"                        (or only PID) and GPU it ran kernels on: N is the\n"
	"                        device time its kernels have completed by now\n"
	"\n"
	"INDEX is the GPU's NVML index (its place in GPUPOOL_SIM_GPUS).\n"
	"Exit status: 0 done, 1 failure, 2 usage.\n";

/* Print a usage error naming what is wrong; returns the usage exit code. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "gpupool-simctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see `gpupool-simctl --help`)\n");
	return EXIT_USAGE;
}

/* Parse a decimal number lo..hi.  Returns 0 or -1. */
static int number(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	return gp_parse_u64(s, out) == 0 && *out >= lo && *out <= hi ? 0 : -1;
}

/* Open the machine of GPUPOOL_SIM_STATE.  Returns 0, or the exit status
 * of a failure (said on stderr). */
static int open_machine(void)
{
	const char *state = getenv("GPUPOOL_SIM_STATE");
	int rc;

	/* A private machine would be this program's alone. */
	if (!state || !*state) {
		fprintf(stderr, "gpupool-simctl: GPUPOOL_SIM_STATE is not set: it must name the "
				"state file of the machine to work on (a private machine "
				"would be this program's alone)\n");
		return 1;
	}
	rc = gp__sim_machine_open();
	if (rc) {
		/* For a bad GPU list or another machine's state file the
		 * simulator has said why, just above. */
		fprintf(stderr, "gpupool-simctl: cannot open the simulated machine %s%s%s\n", state,
			rc == -EINVAL || rc == -EPROTO ? "" : ": ",
			rc == -EINVAL || rc == -EPROTO ? " (see above)" : strerror(-rc));
		return 1;
	}
	return 0;
}

/* busy [PID]: the device time each live process's kernels have completed,
 * per GPU it ran kernels on (gp__sim_timeline_done). */
static int cmd_busy(int argc, char **argv)
{
	static struct gp_sim_procbusy list[GP_SIM_STATE_PROCS];
	uint64_t pid = 0;
	unsigned n, cnt;
	int rc;

	if (argc > 3)
		return usage_error("busy takes at most 1 argument, not %d", argc - 2);
	if (argc == 3 && number(argv[2], 1, INT32_MAX, &pid))
		return usage_error("PID '%s' is not a process id", argv[2]);
	rc = open_machine();
	if (rc)
		return rc;
	n = gp__sim_machine()->cfg.n;
	for (unsigned dev = 0; dev < n; dev++) {
		cnt = gp__sim_timeline_done(dev, list, GP_SIM_STATE_PROCS);
		for (unsigned i = 0; i < cnt && i < GP_SIM_STATE_PROCS; i++) {
			if (pid && (uint64_t)list[i].pid != pid)
				continue;
			printf("pid=%d gpu=%u busy_ns=%" PRIu64 "\n", list[i].pid, dev,
			       list[i].busy_ns);
		}
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "gpupool-simctl: busy: cannot write: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	uint64_t index, arg = 0;
	int fault, want, rc;
	unsigned n;

	if (!cmd) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "busy") == 0)
		return cmd_busy(argc, argv);
	if (strcmp(cmd, "xid") == 0) {
		fault = GP_SIM_FAULT_XID;
		want = 4;
	} else if (strcmp(cmd, "ecc") == 0) {
		fault = GP_SIM_FAULT_ECC_CORRECTED;
		want = 5;
	} else if (strcmp(cmd, "lose") == 0) {
		fault = GP_SIM_FAULT_LOSE;
		want = 3;
	} else if (strcmp(cmd, "restore") == 0) {
		fault = GP_SIM_FAULT_RESTORE;
		want = 3;
	} else {
		return usage_error("unknown command '%s'", cmd);
	}
	if (argc != want)
		return usage_error("%s takes %d argument(s), not %d", cmd, want - 2, argc - 2);
	if (number(argv[2], 0, GP_SIM_GPUS_MAX - 1, &index))
		return usage_error("INDEX '%s' is not a GPU index (0-15)", argv[2]);
	if (fault == GP_SIM_FAULT_XID && number(argv[3], 1, XID_MAX, &arg))
		return usage_error("CODE '%s' is not an Xid code (1-65535)", argv[3]);
	if (fault == GP_SIM_FAULT_ECC_CORRECTED) {
		if (strcmp(argv[3], "uncorrected") == 0)
			fault = GP_SIM_FAULT_ECC_UNCORRECTED;
		else if (strcmp(argv[3], "corrected") != 0)
			return usage_error("'%s' is not corrected or uncorrected", argv[3]);
		if (number(argv[4], 1, ECC_MAX, &arg))
			return usage_error("COUNT '%s' is not a number from 1 to 1000000", argv[4]);
	}

	rc = open_machine();
	if (rc)
		return rc;
	n = gp__sim_machine()->cfg.n;
	if (index >= n)
		return usage_error("INDEX '%s': no such GPU (the machine has %u: 0-%u)", argv[2], n,
				   n - 1);
	rc = gp__sim_fault((unsigned)index, fault, arg);
	if (rc) {
		fprintf(stderr, "gpupool-simctl: %s on GPU %u failed: %s\n", cmd, (unsigned)index,
			strerror(-rc));
		return 1;
	}
	return 0;
}
