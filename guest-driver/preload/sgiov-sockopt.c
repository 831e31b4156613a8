// SPDX-License-Identifier: MIT
/*
 * sgiov-sockopt LEVEL NAME [VALUE]: a dynamically linked probe for the
 * preload's option handling. It makes a connected TCP pair on 127.0.0.1
 * (an ephemeral listener), calls setsockopt(LEVEL, NAME, VALUE) and
 * getsockopt(LEVEL, NAME) on the client and prints what each returned:
 *   set=0|ERRNO_NAME get=0|ERRNO_NAME sock=1|0
 * (sock: fstat says S_IFSOCK). Run once plainly (the kernel's answer) and
 * once under sgiov-run: the two lines must be the same.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *ename(int e)
{
	switch (e) {
	case 0: return "0";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOTSOCK: return "ENOTSOCK";
	case EPERM: return "EPERM";
	}
	return strerrorname_np(e) ? strerrorname_np(e) : "E?";
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a), gl;
	int l, c, s, level, name, v, g = 0, set, get;
	struct stat st;

	if (argc < 3) {
		fprintf(stderr, "usage: sgiov-sockopt LEVEL NAME [VALUE]\n");
		return 2;
	}
	level = atoi(argv[1]);
	name = atoi(argv[2]);
	v = argc > 3 ? atoi(argv[3]) : 1;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	l = socket(AF_INET, SOCK_STREAM, 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || c < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &al) || connect(c, (void *)&a, sizeof(a))) {
		perror("sgiov-sockopt: set-up");
		return 1;
	}
	s = accept(l, NULL, NULL);
	if (s < 0) {
		perror("sgiov-sockopt: accept");
		return 1;
	}
	set = setsockopt(c, level, name, &v, sizeof(v)) ? errno : 0;
	gl = sizeof(g);
	get = getsockopt(c, level, name, &g, &gl) ? errno : 0;
	printf("set=%s get=%s sock=%d\n", ename(set), ename(get),
	       fstat(c, &st) == 0 && S_ISSOCK(st.st_mode));
	return 0;
}
