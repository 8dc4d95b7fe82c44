/* array.c - see array.h.  Entry points: cuArrayCreate_v2,
 * cuArray3DCreate_v2, cuArrayDestroy, cuArray{,3D}GetDescriptor_v2,
 * cuArrayGetMemoryRequirements, cuMipmappedArray*. */
#include "sim/array.h"

#include <stdlib.h>
#include <string.h>

#include "sim/memory.h"
#include "sim/state.h"

struct gp_sim_mipmap;

struct gp_sim_array {
	struct gp_sim_obj h;
	struct gp_sim_list link;        /* all arrays (standalone ones) */
	struct gp_sim_ctx *ctx;
	CUDA_ARRAY3D_DESCRIPTOR desc;
	unsigned elsize;                /* bytes per element */
	size_t bytes;                   /* width * height * depth * elsize */
	struct gp_sim_mem store;        /* standalone: its backing (not in
	                                   the address map: arrays have no
	                                   device address) */
	struct gp_sim_mipmap *mip;      /* level of a mipmapped array */
	char *level_base;               /* level: where its bytes start */
};

struct gp_sim_mipmap {
	struct gp_sim_obj h;
	struct gp_sim_list link;
	struct gp_sim_ctx *ctx;
	CUDA_ARRAY3D_DESCRIPTOR desc;
	unsigned nlevels;
	struct gp_sim_array **levels;
	struct gp_sim_mem store;
};

static struct gp_sim_list arrays = GP_SIM_LIST_INIT(arrays);
static struct gp_sim_list mipmaps = GP_SIM_LIST_INIT(mipmaps);

/* Bytes per element of a format with n channels, 0 if unsupported. */
static unsigned element_size(CUarray_format f, unsigned n)
{
	static const struct {
		CUarray_format f;
		unsigned bytes;      /* per channel, or per element if fixed */
		unsigned channels;   /* 0: 1, 2 or 4 allowed; else required */
	} t[] = {
		{CU_AD_FORMAT_UNSIGNED_INT8, 1, 0}, {CU_AD_FORMAT_UNSIGNED_INT16, 2, 0},
		{CU_AD_FORMAT_UNSIGNED_INT32, 4, 0}, {CU_AD_FORMAT_SIGNED_INT8, 1, 0},
		{CU_AD_FORMAT_SIGNED_INT16, 2, 0}, {CU_AD_FORMAT_SIGNED_INT32, 4, 0},
		{CU_AD_FORMAT_HALF, 2, 0}, {CU_AD_FORMAT_FLOAT, 4, 0},
		{CU_AD_FORMAT_UNORM_INT8X1, 1, 1}, {CU_AD_FORMAT_UNORM_INT8X2, 2, 2},
		{CU_AD_FORMAT_UNORM_INT8X4, 4, 4}, {CU_AD_FORMAT_UNORM_INT16X1, 2, 1},
		{CU_AD_FORMAT_UNORM_INT16X2, 4, 2}, {CU_AD_FORMAT_UNORM_INT16X4, 8, 4},
		{CU_AD_FORMAT_SNORM_INT8X1, 1, 1}, {CU_AD_FORMAT_SNORM_INT8X2, 2, 2},
		{CU_AD_FORMAT_SNORM_INT8X4, 4, 4}, {CU_AD_FORMAT_SNORM_INT16X1, 2, 1},
		{CU_AD_FORMAT_SNORM_INT16X2, 4, 2}, {CU_AD_FORMAT_SNORM_INT16X4, 8, 4},
	};

	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		if (t[i].f != f)
			continue;
		if (t[i].channels)
			return n == t[i].channels ? t[i].bytes : 0;
		return (n == 1 || n == 2 || n == 4) ? t[i].bytes * n : 0;
	}
	return 0;
}

/* Check a descriptor; fills the element size.  1-D arrays have height 0
 * and depth 0, 2-D depth 0; layered arrays count layers in depth. */
static CUresult check_desc(const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned *elsize)
{
	const unsigned known = CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_SURFACE_LDST |
			       CUDA_ARRAY3D_CUBEMAP | CUDA_ARRAY3D_TEXTURE_GATHER |
			       CUDA_ARRAY3D_DEPTH_TEXTURE | CUDA_ARRAY3D_COLOR_ATTACHMENT;
	int layered = (d->Flags & CUDA_ARRAY3D_LAYERED) != 0;

	if (d->Flags & (CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING))
		return CUDA_ERROR_NOT_SUPPORTED;
	if (d->Flags & ~known)
		return CUDA_ERROR_INVALID_VALUE;
	*elsize = element_size(d->Format, d->NumChannels);
	if (!*elsize || d->Width == 0 || (d->Height == 0 && d->Depth && !layered))
		return CUDA_ERROR_INVALID_VALUE;
	if (d->Depth && !layered) { /* 3-D */
		if (d->Width > 16384 || d->Height > 16384 || d->Depth > 16384)
			return CUDA_ERROR_INVALID_VALUE;
	} else if (d->Width > 131072 || d->Height > 65536 || d->Depth > 2048) {
		return CUDA_ERROR_INVALID_VALUE;
	}
	if ((d->Flags & CUDA_ARRAY3D_CUBEMAP) &&
	    (d->Width != d->Height || !d->Depth || d->Depth % 6 || (!layered && d->Depth != 6)))
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

static size_t dim(size_t v)
{
	return v ? v : 1;
}

/* Bytes of an array of descriptor d (elsize known valid). */
static size_t array_bytes(const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned elsize)
{
	return d->Width * dim(d->Height) * dim(d->Depth) * elsize;
}

/* Charge and back `bytes` of array storage on ctx's device into m. */
static CUresult store_new(struct gp_sim_ctx *c, uint64_t bytes, struct gp_sim_mem *m)
{
	uint64_t charge = GP_SIM_ROUND_UP(bytes, GP_SIM_GRANULE);
	CUresult rc;

	memset(m, 0, sizeof *m);
	m->fd = -1;
	m->dev = c->dev;
	m->size = bytes;
	m->span = charge;
	if (gp__sim_charge((unsigned)c->dev, charge))
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->base = gp__sim_va_alloc_locked(c->dev, charge);
	rc = m->base ? gp__sim_backing_map(m) : CUDA_ERROR_OUT_OF_MEMORY;
	if (rc) {
		gp__sim_va_free_locked(m->base, m->span);
		gp__sim_uncharge((unsigned)c->dev, charge);
		return rc;
	}
	m->charge = charge;
	return CUDA_SUCCESS;
}

static void store_free(struct gp_sim_mem *m)
{
	gp__sim_backing_unmap(m);
	gp__sim_uncharge((unsigned)m->dev, m->charge);
	gp__sim_va_free_locked(m->base, m->span);
	m->charge = 0;
	m->base = 0;
}

static CUresult array_create(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
	struct gp_sim_ctx *c;
	struct gp_sim_array *a = NULL;
	unsigned elsize;
	CUresult rc;

	rc = check_desc(d, &elsize);
	if (rc)
		return rc;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		goto out;
	a = calloc(1, sizeof *a);
	if (!a) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	a->ctx = c;
	a->desc = *d;
	a->elsize = elsize;
	a->bytes = array_bytes(d, elsize);
	rc = store_new(c, a->bytes, &a->store);
	if (rc)
		goto out;
	if (gp__sim_handle_add(&a->h, GP_SIM_ARRAY)) {
		store_free(&a->store);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	gp_sim_list_add(&arrays, &a->link);
	*pHandle = (CUarray)a;
	a = NULL;
out:
	gp__sim_unlock();
	free(a);
	return rc;
}

CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *pAllocateArray)
{
	CUDA_ARRAY3D_DESCRIPTOR d;

	GP_SIM_ENTER();
	if (!pHandle || !pAllocateArray)
		return CUDA_ERROR_INVALID_VALUE;
	memset(&d, 0, sizeof d);
	d.Width = pAllocateArray->Width;
	d.Height = pAllocateArray->Height;
	d.Format = pAllocateArray->Format;
	d.NumChannels = pAllocateArray->NumChannels;
	return array_create(pHandle, &d);
}

CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *pAllocateArray)
{
	GP_SIM_ENTER();
	if (!pHandle || !pAllocateArray)
		return CUDA_ERROR_INVALID_VALUE;
	return array_create(pHandle, pAllocateArray);
}

static void array_free_locked(struct gp_sim_array *a)
{
	if (!a->mip) {
		store_free(&a->store);
		gp_sim_list_del(&a->link);
	}
	gp__sim_handle_del(&a->h);
	free(a);
}

CUresult cuArrayDestroy(CUarray hArray)
{
	struct gp_sim_array *a;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	a = gp__sim_handle_get(hArray, GP_SIM_ARRAY);
	if (a && !a->mip) { /* a mipmap level goes with its mipmap */
		array_free_locked(a);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult gp__sim_array_storage_locked(CUarray h, char **base, size_t *rowbytes, size_t *height,
				      size_t *depth, size_t *bytes)
{
	struct gp_sim_array *a = gp__sim_handle_get(h, GP_SIM_ARRAY);

	if (!a)
		return CUDA_ERROR_INVALID_VALUE;
	*base = a->mip ? a->level_base : a->store.host;
	*rowbytes = a->desc.Width * a->elsize;
	*height = dim(a->desc.Height);
	*depth = dim(a->desc.Depth);
	*bytes = a->bytes;
	return CUDA_SUCCESS;
}

static CUresult get_desc(struct gp_sim_array **out, CUarray h)
{
	*out = gp__sim_handle_get(h, GP_SIM_ARRAY);
	return *out ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuArrayGetDescriptor_v2(CUDA_ARRAY_DESCRIPTOR *pArrayDescriptor, CUarray hArray)
{
	struct gp_sim_array *a;
	CUresult rc;

	GP_SIM_ENTER();
	if (!pArrayDescriptor)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = get_desc(&a, hArray);
	if (!rc && a->desc.Depth)
		rc = CUDA_ERROR_INVALID_VALUE; /* a 3-D array: use the 3-D call */
	if (!rc) {
		pArrayDescriptor->Width = a->desc.Width;
		pArrayDescriptor->Height = a->desc.Height;
		pArrayDescriptor->Format = a->desc.Format;
		pArrayDescriptor->NumChannels = a->desc.NumChannels;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuArray3DGetDescriptor_v2(CUDA_ARRAY3D_DESCRIPTOR *pArrayDescriptor, CUarray hArray)
{
	struct gp_sim_array *a;
	CUresult rc;

	GP_SIM_ENTER();
	if (!pArrayDescriptor)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = get_desc(&a, hArray);
	if (!rc)
		*pArrayDescriptor = a->desc;
	gp__sim_unlock();
	return rc;
}

static void requirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *r, uint64_t charge)
{
	memset(r, 0, sizeof *r);
	r->size = (size_t)charge;
	r->alignment = (size_t)GP_SIM_GRANULE;
}

CUresult cuArrayGetMemoryRequirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *memoryRequirements,
				      CUarray array, CUdevice device)
{
	struct gp_sim_array *a;
	CUresult rc;

	GP_SIM_ENTER();
	if (!memoryRequirements)
		return CUDA_ERROR_INVALID_VALUE;
	if (gp__sim_visible_index(device) < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	rc = get_desc(&a, array);
	if (!rc)
		requirements(memoryRequirements,
			     a->mip ? GP_SIM_ROUND_UP(a->bytes, GP_SIM_GRANULE) : a->store.charge);
	gp__sim_unlock();
	return rc;
}

/* --- mipmapped arrays ----------------------------------------------------- */

static void mipmap_free_locked(struct gp_sim_mipmap *m)
{
	for (unsigned i = 0; i < m->nlevels; i++)
		if (m->levels[i])
			array_free_locked(m->levels[i]);
	free(m->levels);
	if (m->store.charge)
		store_free(&m->store);
	gp_sim_list_del(&m->link);
	gp__sim_handle_del(&m->h);
	free(m);
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray *pHandle,
				const CUDA_ARRAY3D_DESCRIPTOR *pMipmappedArrayDesc,
				unsigned int numMipmapLevels)
{
	const CUDA_ARRAY3D_DESCRIPTOR *d = pMipmappedArrayDesc;
	struct gp_sim_mipmap *m = NULL;
	struct gp_sim_ctx *c;
	unsigned elsize, max_levels = 1;
	size_t off[32], total = 0, big;
	int layered;
	CUresult rc;

	GP_SIM_ENTER();
	if (!pHandle || !d)
		return CUDA_ERROR_INVALID_VALUE;
	rc = check_desc(d, &elsize);
	if (rc)
		return rc;
	layered = (d->Flags & (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_CUBEMAP)) != 0;
	big = d->Width;
	if (d->Height > big)
		big = d->Height;
	if (!layered && d->Depth > big)
		big = d->Depth;
	while (big >> max_levels)
		max_levels++;
	if (numMipmapLevels == 0 || numMipmapLevels > max_levels)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	rc = gp__sim_ctx_current_locked(&c);
	if (rc)
		goto out;
	m = calloc(1, sizeof *m);
	if (m)
		m->levels = calloc(numMipmapLevels, sizeof *m->levels);
	if (!m || !m->levels) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	gp_sim_list_init(&m->link);
	m->ctx = c;
	m->desc = *d;
	m->nlevels = numMipmapLevels;
	for (unsigned i = 0; i < numMipmapLevels; i++) {
		struct gp_sim_array *a = calloc(1, sizeof *a);
		if (!a) {
			rc = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		a->desc = *d;
		a->desc.Width = dim(d->Width >> i);
		a->desc.Height = d->Height ? dim(d->Height >> i) : 0;
		a->desc.Depth = d->Depth ? (layered ? d->Depth : dim(d->Depth >> i)) : 0;
		a->elsize = elsize;
		a->bytes = array_bytes(&a->desc, elsize);
		a->mip = m;
		a->ctx = c;
		off[i] = total;
		total += GP_SIM_ROUND_UP(a->bytes, GP_SIM_ARRAY_LEVEL_ALIGN);
		if (gp__sim_handle_add(&a->h, GP_SIM_ARRAY)) {
			free(a);
			rc = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		m->levels[i] = a;
	}
	rc = store_new(c, total, &m->store);
	if (rc)
		goto out;
	for (unsigned i = 0; i < numMipmapLevels; i++)
		m->levels[i]->level_base = (char *)m->store.host + off[i];
	if (gp__sim_handle_add(&m->h, GP_SIM_MIPMAP)) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	gp_sim_list_add(&mipmaps, &m->link);
	*pHandle = (CUmipmappedArray)m;
	m = NULL;
out:
	if (m) {
		for (unsigned i = 0; m->levels && i < m->nlevels; i++)
			if (m->levels[i])
				array_free_locked(m->levels[i]);
		free(m->levels);
		if (m->store.charge)
			store_free(&m->store);
		free(m);
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray hMipmappedArray)
{
	struct gp_sim_mipmap *m;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	gp__sim_lock();
	m = gp__sim_handle_get(hMipmappedArray, GP_SIM_MIPMAP);
	if (m) {
		mipmap_free_locked(m);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMipmappedArrayGetLevel(CUarray *pLevelArray, CUmipmappedArray hMipmappedArray,
				  unsigned int level)
{
	struct gp_sim_mipmap *m;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	if (!pLevelArray)
		return CUDA_ERROR_INVALID_VALUE;
	gp__sim_lock();
	m = gp__sim_handle_get(hMipmappedArray, GP_SIM_MIPMAP);
	if (m && level >= m->nlevels)
		rc = CUDA_ERROR_INVALID_VALUE;
	else if (m) {
		*pLevelArray = (CUarray)m->levels[level];
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

CUresult cuMipmappedArrayGetMemoryRequirements(CUDA_ARRAY_MEMORY_REQUIREMENTS *memoryRequirements,
					       CUmipmappedArray mipmap, CUdevice device)
{
	struct gp_sim_mipmap *m;
	CUresult rc = CUDA_ERROR_INVALID_HANDLE;

	GP_SIM_ENTER();
	if (!memoryRequirements)
		return CUDA_ERROR_INVALID_VALUE;
	if (gp__sim_visible_index(device) < 0)
		return CUDA_ERROR_INVALID_DEVICE;
	gp__sim_lock();
	m = gp__sim_handle_get(mipmap, GP_SIM_MIPMAP);
	if (m) {
		requirements(memoryRequirements, m->store.charge);
		rc = CUDA_SUCCESS;
	}
	gp__sim_unlock();
	return rc;
}

void gp__sim_array_ctx_gone_locked(struct gp_sim_ctx *ctx)
{
	for (struct gp_sim_list *l = arrays.next, *next; l != &arrays; l = next) {
		struct gp_sim_array *a = gp_sim_container(l, struct gp_sim_array, link);
		next = l->next;
		if (a->ctx == ctx)
			array_free_locked(a);
	}
	for (struct gp_sim_list *l = mipmaps.next, *next; l != &mipmaps; l = next) {
		struct gp_sim_mipmap *m = gp_sim_container(l, struct gp_sim_mipmap, link);
		next = l->next;
		if (m->ctx == ctx)
			mipmap_free_locked(m);
	}
}
