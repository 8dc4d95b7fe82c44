/* lease.c - see lease.h. */
#include "common/lease.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

static void lock_range(struct flock *fl, short type, unsigned slot)
{
	memset(fl, 0, sizeof *fl); /* OFD locks require l_pid == 0 */
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = GP_LEASE_BASE + (off_t)slot;
	fl->l_len = 1;
}

int gp_lease_take(int fd, unsigned slot)
{
	struct flock fl;

	lock_range(&fl, F_WRLCK, slot);
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return (errno == EAGAIN || errno == EACCES) ? -EAGAIN : -errno;
}

void gp_lease_drop(int fd, unsigned slot)
{
	struct flock fl;

	lock_range(&fl, F_UNLCK, slot);
	(void)fcntl(fd, F_OFD_SETLK, &fl);
}

int gp_lease_held(int fd, unsigned slot)
{
	struct flock fl;

	lock_range(&fl, F_WRLCK, slot);
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}
