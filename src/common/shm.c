/* shm.c - see shm.h. */
#include "common/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_file(const char *path)
{
	int fd;

	if (!path)
		fd = memfd_create("gpupool", MFD_CLOEXEC);
	else
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int gp_shm_open(struct gp_shm *shm, const char *path, size_t size,
		gp_shm_init_fn init, gp_shm_check_fn check, void *arg)
{
	struct stat st;
	void *base = MAP_FAILED;
	int fd, rc, fresh = 0;

	shm->fd = -1;
	shm->base = NULL;
	shm->size = 0;
	fd = open_file(path);
	if (fd < 0)
		return fd;
	/* flock and the OFD record locks used for leases are independent lock
	 * types on Linux, so this does not disturb anyone's leases. */
	while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	if (rc < 0) {
		rc = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (st.st_size == 0) {
		if (ftruncate(fd, (off_t)size) < 0) {
			rc = -errno;
			goto fail;
		}
		fresh = 1;
	} else if ((size_t)st.st_size != size) {
		rc = -EPROTO;
		goto fail;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	rc = fresh ? init(base, size, arg) : check(base, size, arg);
	if (rc) {
		if (fresh && ftruncate(fd, 0) < 0) /* let the next opener retry */
			rc = -errno;
		goto fail;
	}
	flock(fd, LOCK_UN);
	shm->fd = fd;
	shm->base = base;
	shm->size = size;
	return 0;
fail:
	if (base != MAP_FAILED)
		munmap(base, size);
	close(fd); /* also drops the flock */
	return rc;
}

int gp_shm_reopen(struct gp_shm *shm)
{
	static const char prefix[] = "/proc/self/fd/";
	char proc[sizeof prefix + 12], digits[12];
	int fd, n = 0;
	unsigned v = (unsigned)shm->fd;

	/* Built by hand: snprintf is not async-signal-safe. */
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < sizeof prefix - 1; i++)
		proc[i] = prefix[i];
	for (int i = 0; i < n; i++)
		proc[sizeof prefix - 1 + (size_t)i] = digits[n - 1 - i];
	proc[sizeof prefix - 1 + (size_t)n] = '\0';
	fd = open(proc, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* The inherited mapping holds a reference to the parent's open file
	 * description too, and with it the parent's leases: after the parent
	 * died they would live on in us.  Map the same file again, in place,
	 * through our own description. */
	if (shm->base && mmap(shm->base, shm->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			      fd, 0) == MAP_FAILED) {
		int e = errno;
		close(fd);
		return -e;
	}
	close(shm->fd);
	shm->fd = fd;
	return 0;
}

void gp_shm_close(struct gp_shm *shm)
{
	if (shm->base)
		munmap(shm->base, shm->size);
	if (shm->fd >= 0)
		close(shm->fd);
	shm->base = NULL;
	shm->size = 0;
	shm->fd = -1;
}
