/*
 * scripts/libreswan-espintcp.c -- the lab's stand-in for the kernel's "espintcp" TCP upper
 * layer protocol, preloaded into libreswan's pluto only (scripts/libreswan.sh builds it).
 *
 * pluto carries IKE over TCP (RFC 9329) by reading the "IKETCP" prefix itself and then
 * switching the socket to the kernel's espintcp ULP (setsockopt TCP_ULP "espintcp"), which
 * from then on adds the 2-octet Length field to every write and returns one message per read,
 * without it. The lab's kernel has no ESP and so no espintcp: the setsockopt fails with ENOENT
 * and pluto closes every TCP connection. This library answers that setsockopt itself and does
 * the same framing in user space on that socket:
 *   write(fd, msg, n): sends Length (n + 2, big-endian, the field included) and msg;
 *   read(fd, buf, n):  returns the next whole message without its Length field. Messages
 *                      that do not start with the 4-octet non-ESP marker are ESP, which the
 *                      kernel would hand to XFRM; there is none here, so they are dropped.
 * What it did goes to the file $LIBRESWAN_ESPINTCP_LOG names (one line per event).
 * It reads at most up to the end of the current message, so a second message stays in the
 * socket and keeps it readable for pluto's (level-triggered) event loop.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define MAX_FD 4096
#define LEN_FIELD 2
#define NON_ESP_MARKER 4
#define MAX_MESSAGE 65535

struct framed {
	size_t have;                 /* bytes of the current message read so far */
	uint8_t buf[MAX_MESSAGE];    /* Length field + message */
};

static struct framed *framed_fds[MAX_FD];

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_close)(int);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);

static void resolve(void)
{
	if (real_read == NULL) {
		real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
		real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
		real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
		real_setsockopt = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
	}
}

static struct framed *framed_of(int fd)
{
	return (fd >= 0 && fd < MAX_FD) ? framed_fds[fd] : NULL;
}

/* pluto does not keep stderr: notes go to $LIBRESWAN_ESPINTCP_LOG (appended), if set */
static void note(const char *what, int fd, size_t n)
{
	const char *path = getenv("LIBRESWAN_ESPINTCP_LOG");
	if (path == NULL || path[0] == '\0') {
		return;
	}
	FILE *log = fopen(path, "ae");
	if (log != NULL) {
		fprintf(log, "libreswan-espintcp: fd %d: %s (%zu bytes)\n", fd, what, n);
		fclose(log);
	}
}

int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	resolve();
	if (level == IPPROTO_TCP && name == TCP_ULP && value != NULL && len >= 8 &&
	    memcmp(value, "espintcp", 8) == 0 && fd >= 0 && fd < MAX_FD) {
		if (framed_fds[fd] == NULL) {
			framed_fds[fd] = calloc(1, sizeof(struct framed));
			if (framed_fds[fd] == NULL) {
				errno = ENOMEM;
				return -1;
			}
		}
		framed_fds[fd]->have = 0;
		note("espintcp framing in user space", fd, 0);
		return 0;
	}
	return real_setsockopt(fd, level, name, value, len);
}

ssize_t read(int fd, void *out, size_t n)
{
	resolve();
	struct framed *f = framed_of(fd);
	if (f == NULL) {
		return real_read(fd, out, n);
	}
	for (;;) {
		size_t want = LEN_FIELD;
		if (f->have >= LEN_FIELD) {
			want = ((size_t)f->buf[0] << 8) | f->buf[1];
			if (want < LEN_FIELD + NON_ESP_MARKER) {
				/* too short for IKE and for ESP: the kernel drops the stream too */
				note("invalid Length field, closing", fd, want);
				errno = EPROTO;
				return -1;
			}
		}
		if (f->have < want) {
			ssize_t r = real_read(fd, f->buf + f->have, want - f->have);
			if (r <= 0) {
				return r; /* EAGAIN (the rest is not here yet), an error, or EOF */
			}
			f->have += (size_t)r;
			continue;
		}
		/* a whole message */
		const uint8_t *msg = f->buf + LEN_FIELD;
		size_t len = want - LEN_FIELD;
		f->have = 0;
		if (memcmp(msg, "\0\0\0\0", NON_ESP_MARKER) != 0) {
			note("ESP message dropped (no XFRM here)", fd, len);
			continue;
		}
		if (len > n) {
			len = n;
		}
		memcpy(out, msg, len);
		return (ssize_t)len;
	}
}

ssize_t write(int fd, const void *data, size_t n)
{
	resolve();
	if (framed_of(fd) == NULL) {
		return real_write(fd, data, n);
	}
	if (n > MAX_MESSAGE - LEN_FIELD) {
		errno = EMSGSIZE;
		return -1;
	}
	uint8_t frame[MAX_MESSAGE];
	size_t total = n + LEN_FIELD, done = 0;
	frame[0] = (uint8_t)(total >> 8);
	frame[1] = (uint8_t)(total & 0xff);
	memcpy(frame + LEN_FIELD, data, n);
	/* all or nothing, as the kernel's sendmsg: wait (bounded) when the socket is full */
	while (done < total) {
		ssize_t w = real_write(fd, frame + done, total - done);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, 2000) <= 0) {
				errno = EAGAIN;
				return done == 0 ? -1 : (ssize_t)n;
			}
			continue;
		}
		if (w < 0) {
			return -1;
		}
		done += (size_t)w;
	}
	return (ssize_t)n;
}

int close(int fd)
{
	resolve();
	struct framed *f = framed_of(fd);
	if (f != NULL) {
		free(f);
		framed_fds[fd] = NULL;
	}
	return real_close(fd);
}
