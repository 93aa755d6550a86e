// SPDX-License-Identifier: Apache-2.0
/*
 * The guest side of the tap benchmark: writes 60-byte frames into a tap as fast as one thread
 * per queue can, like a guest's transmit under QEMU. Node.js would add its own call cost to
 * every frame and hide what the kernel spends.
 *   tapwriter NAME QUEUES [CPU ...]   then, on stdin, one count per line: each queue's thread
 *   (pinned to its CPU, if given) writes that many frames; prints the wall time in ns.
 * QUEUES > 1 opens an IFF_MULTI_QUEUE tap, one fd per queue. Exits on end of input.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUES 16

struct queue {
	int fd;
	int cpu; /* -1: not pinned */
	long frames;
	pthread_t thread;
};

static pthread_barrier_t start;
static unsigned char frame[60];

static void *writer(void *arg)
{
	struct queue *q = arg;

	if (q->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(q->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			fprintf(stderr, "tapwriter: pin to cpu %d failed\n", q->cpu);
	}
	pthread_barrier_wait(&start);
	for (long i = 0; i < q->frames; i++)
		if (write(q->fd, frame, sizeof(frame)) != sizeof(frame)) {
			fprintf(stderr, "tapwriter: write: %s\n", strerror(errno));
			exit(1);
		}
	return NULL;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct queue qs[MAX_QUEUES];
	int n = argc > 2 ? atoi(argv[2]) : 0;
	char line[64];

	if (argc < 3 || n < 1 || n > MAX_QUEUES || strlen(argv[1]) >= IFNAMSIZ) {
		fprintf(stderr, "usage: tapwriter NAME QUEUES(1-%d) [CPU ...]\n", MAX_QUEUES);
		return 2;
	}
	/* broadcast from a guest MAC, ethertype IPv4: an ordinary data frame */
	memset(frame, 0xff, 6);
	memcpy(frame + 6, "\x52\x54\x00\x00\x00\x03", 6);
	frame[12] = 0x08;
	frame[14] = 0x45;
	for (int i = 0; i < n; i++) {
		struct ifreq ifr = { 0 };

		qs[i].fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
		if (qs[i].fd < 0) {
			perror("tapwriter: open /dev/net/tun");
			return 1;
		}
		strcpy(ifr.ifr_name, argv[1]);
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (n > 1 ? IFF_MULTI_QUEUE : 0);
		if (ioctl(qs[i].fd, TUNSETIFF, &ifr) < 0) {
			perror("tapwriter: TUNSETIFF");
			return 1;
		}
		qs[i].cpu = argc > 3 + i ? atoi(argv[3 + i]) : -1;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		long frames = atol(line);
		long long t0;

		pthread_barrier_init(&start, NULL, n + 1);
		for (int i = 0; i < n; i++) {
			qs[i].frames = frames;
			pthread_create(&qs[i].thread, NULL, writer, &qs[i]);
		}
		pthread_barrier_wait(&start);
		t0 = now_ns();
		for (int i = 0; i < n; i++)
			pthread_join(qs[i].thread, NULL);
		printf("%lld\n", now_ns() - t0);
		fflush(stdout);
		pthread_barrier_destroy(&start);
	}
	return 0;
}
