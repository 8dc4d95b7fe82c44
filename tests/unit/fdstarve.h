/* fdstarve.h - for the tests of what a daemon's server does when it runs
 * out of descriptors (test_http.c, test_scaler_grpc.c): limit a forked
 * server to three more descriptors, fill its listener's backlog from
 * outside, and collect what it logs meanwhile.  Static, for one test file
 * each. */
#ifndef GP_TESTS_FDSTARVE_H
#define GP_TESTS_FDSTARVE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* In the server's process: allow three descriptors above those open now
 * (a new descriptor takes the lowest free number).  0, or -1. */
static int fdstarve_limit(void)
{
	struct rlimit rl;
	int top = open("/dev/null", O_RDONLY);

	if (top < 0)
		return -1;
	close(top);
	rl.rlim_cur = rl.rlim_max = (rlim_t)top + 3;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

/* A TCP connection to the loopback port (the kernel completes the
 * handshake from the backlog, accepted or not), or -1. */
static int fdstarve_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* What the server writes to `fd` for `ms`, NUL-terminated in log (n
 * bytes); returns its length. */
static size_t fdstarve_log(int fd, char *log, size_t n, int ms)
{
	size_t got = 0;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int t = 0; t < ms / 100; t++) {
		ssize_t r;
		usleep(100000);
		while ((r = read(fd, log + got, n - 1 - got)) > 0)
			got += (size_t)r;
	}
	log[got] = '\0';
	return got;
}

#endif
