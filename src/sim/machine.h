/* machine.h - the simulated GPUs: parsing GPUPOOL_SIM_GPUS and everything
 * derived from a GPU's configured identity (UUID, PCI address, compute
 * capability and the other per-model figures the driver reports).
 *
 * Pure functions without state: both the driver and NVML use them, and
 * the same (index, model) always yields the same identity, in every
 * process, so that all of them agree on which GPU is which.
 */
#ifndef GP_SIM_MACHINE_H
#define GP_SIM_MACHINE_H

#include <stddef.h>
#include <stdint.h>

#define GP_SIM_MODEL_MAX 48      /* model name, NUL included */
#define GP_SIM_UUID_STR 41       /* "GPU-" + 36 + NUL */
#define GP_SIM_DEFAULT_GPUS "H100-SXM-80GB:80GiB:132"
#define GP_SIM_GPUS_MAX 16       /* GPUs in one machine */

/* --- modelling constants (docs/sim.md explains each) --------------------- */

/* Allocation granule: every device allocation is charged in multiples of
 * this, VMM granularity, pool growth step, graph memory step. */
#define GP_SIM_GRANULE ((uint64_t)2 << 20)
/* Pitch alignment of cuMemAllocPitch and minimum device address alignment. */
#define GP_SIM_PITCH_ALIGN 512u
/* What a context costs on its device: base + per SM. */
#define GP_SIM_CTX_BASE ((uint64_t)256 << 20)
#define GP_SIM_CTX_PER_SM ((uint64_t)2 << 20)
/* Memory the "driver" keeps on every device, never available to programs
 * (NVML v2 reports it as `reserved`). */
#define GP_SIM_DRIVER_RESERVED ((uint64_t)64 << 20)
/* fill_u32 writes at this rate: bytes per nanosecond (1000 GB/s). */
#define GP_SIM_FILL_BYTES_PER_NS 1u
/* Longest spin_<N>us kernel accepted, microseconds (one hour). */
#define GP_SIM_SPIN_MAX_US 3600000000ull

/* x rounded up to a multiple of a. */
#define GP_SIM_ROUND_UP(x, a)                                                \
	((((uint64_t)(x)) + ((uint64_t)(a) - 1)) / (uint64_t)(a) * (uint64_t)(a))

/* One configured GPU. */
struct gp_sim_gpu {
	char model[GP_SIM_MODEL_MAX]; /* as written in GPUPOOL_SIM_GPUS */
	uint64_t memory;              /* bytes of device memory */
	uint32_t sms;                 /* streaming multiprocessors */
	uint32_t pad_;
};

/* The whole machine as configured. */
struct gp_sim_config {
	unsigned n;                              /* GPUs, 1..GP_SIM_GPUS_MAX */
	struct gp_sim_gpu gpu[GP_SIM_GPUS_MAX];
};

/* Figures that depend on the GPU model (first matching name prefix). */
struct gp_sim_model {
	const char *prefix;       /* case-insensitive model prefix, "" = default */
	int cc_major, cc_minor;   /* compute capability */
	uint32_t pci_device;      /* PCI device id (vendor 0x10de) */
	int clock_khz;            /* SM clock */
	int mem_clock_khz;        /* memory clock */
	int bus_width;            /* memory bus width, bits */
	int l2_bytes;             /* L2 cache */
	int smem_per_sm;          /* shared memory per multiprocessor */
	int smem_optin;           /* opt-in shared memory per block */
	int threads_per_sm;       /* resident threads per multiprocessor */
	int blocks_per_sm;        /* resident blocks per multiprocessor */
	int nvlinks;              /* NVLinks of its SXM form (all to NVSwitches) */
	int nvswitches;           /* NVSwitches of that form's baseboard */
	uint32_t nvswitch_pci_device; /* their PCI device id */
};

/* Parse a GPUPOOL_SIM_GPUS value ("MODEL:MEMORY:SMS,...").  Returns 0, or
 * -EINVAL with a sentence naming the bad item in `err`. */
int gp__sim_config_parse(const char *text, struct gp_sim_config *cfg, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/* Write the configuration back as GPUPOOL_SIM_GPUS text (for messages). */
void gp__sim_config_format(const struct gp_sim_config *cfg, char *buf, size_t n);

/* The per-model figures of `model` (never NULL: falls back to a default). */
const struct gp_sim_model *gp__sim_model(const char *model);

/* The 16 bytes of GPU `index`'s UUID. */
void gp__sim_gpu_uuid(unsigned index, const char *model, unsigned char out[16]);

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into buf (>= GP_SIM_UUID_STR). */
void gp__sim_gpu_uuid_str(unsigned index, const char *model, char *buf, size_t n);

/* The marketing name the driver and NVML report: "NVIDIA <model>" (the
 * model as configured, unless it already starts with "NVIDIA"). */
void gp__sim_gpu_name(const char *model, char *buf, size_t n);

/* PCI bus number of GPU `index` (domain 0, device 0, function 0). */
unsigned gp__sim_gpu_pci_bus(unsigned index);

/* NUMA node of GPU `index` in a machine of `n` GPUs: 0 when n is 1, else
 * the first ceil(n/2) GPUs on node 0 and the rest on node 1 (a
 * two-socket server). */
unsigned gp__sim_gpu_numa(unsigned index, unsigned n);

/* NVLinks of `model`: the model table's count when the name contains
 * "SXM" (any case), else 0: PCIe cards have none. */
int gp__sim_gpu_nvlinks(const char *model);

#endif
