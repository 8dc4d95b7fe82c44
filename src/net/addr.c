/* addr.c - see addr.h. */
#include "net/addr.h"

#include <errno.h>
#include <string.h>

int gp_addr_split(const char *s, char *host, size_t hn, int *port)
{
	const char *colon, *p;
	long v = 0;

	if (!s || hn < 8)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= hn)
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= hn)
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		if (!host[0])
			strcpy(host, "0.0.0.0");
	}
	p = colon + 1;
	if (!*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	for (; *p; p++)
		v = v * 10 + (*p - '0');
	if (v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}
