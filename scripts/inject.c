/* inject: send a classic pcap's frames on an interface at a set packet rate.
 *
 * The live-capture benchmark's load (scripts/bench_capture.py compiles it with cc):
 * tcpreplay could not keep rates above 125,000-163,000 packets/s here. This reads the
 * whole file into memory, then sends the frames on an AF_PACKET socket with sendmmsg in
 * batches of 64, each batch due at its place on the schedule (start + n / rate), and
 * prints one JSON line: frames sent, seconds taken, send errors.
 *
 *   inject IFACE FILE.pcap RATE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void sleep_until(double when) {
    struct timespec t = {(time_t)when, (long)((when - (time_t)when) * 1e9)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
}

/* The frames of a little-endian classic pcap, as iovecs into one buffer. */
static size_t read_frames(const char *path, struct iovec **frames) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size);
    if (!buf || fread(buf, 1, size, f) != (size_t)size) { perror(path); exit(1); }
    fclose(f);
    size_t n = 0, cap = 1024;
    *frames = malloc(cap * sizeof **frames);
    for (long off = 24; off + 16 <= size;) {
        uint32_t caplen;
        memcpy(&caplen, buf + off + 8, 4);
        if (off + 16 + (long)caplen > size) break;
        if (n == cap) *frames = realloc(*frames, (cap *= 2) * sizeof **frames);
        (*frames)[n].iov_base = buf + off + 16;
        (*frames)[n++].iov_len = caplen;
        off += 16 + caplen;
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: inject IFACE FILE.pcap RATE\n"); return 2; }
    double rate = atof(argv[3]);
    struct iovec *frames;
    size_t n = read_frames(argv[2], &frames);
    int fd = socket(AF_PACKET, SOCK_RAW, 0);   /* protocol 0: sends, receives nothing */
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(argv[1])};
    if (fd < 0 || !to.sll_ifindex || bind(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        perror(argv[1]);
        return 1;
    }
    static struct mmsghdr msgs[BATCH];
    size_t sent = 0, errors = 0;
    double start = now();
    while (sent < n) {
        sleep_until(start + sent / rate);
        size_t count = n - sent < BATCH ? n - sent : BATCH;
        for (size_t i = 0; i < count; i++) {
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = &frames[sent + i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int done = sendmmsg(fd, msgs, count, 0);
        if (done <= 0) { errors++; done = 1; }   /* skip a frame the kernel refused */
        sent += done;
    }
    printf("{\"sent\": %zu, \"seconds\": %.6f, \"errors\": %zu}\n", sent - errors, now() - start,
           errors);
    return 0;
}
