#define _GNU_SOURCE
#include "CRouterShims.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <linux/sock_diag.h>

#define ROUTERD_MAX_BATCH 1024

int routerd_recv_batch(int fd, routerd_dgram *slots, unsigned int count, int flags) {
    if (count > ROUTERD_MAX_BATCH) count = ROUTERD_MAX_BATCH;
    struct mmsghdr headers[ROUTERD_MAX_BATCH];
    struct iovec vectors[ROUTERD_MAX_BATCH];
    // Room for one SCM_TIMESTAMPNS per datagram (the only control message these sockets ask for).
    union {
        char bytes[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control[ROUTERD_MAX_BATCH];
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = slots[i].buffer;
        vectors[i].iov_len = slots[i].capacity;
        memset(&headers[i], 0, sizeof(headers[i]));
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
        headers[i].msg_hdr.msg_name = &slots[i].address;
        headers[i].msg_hdr.msg_namelen = sizeof(slots[i].address);
        headers[i].msg_hdr.msg_control = control[i].bytes;
        headers[i].msg_hdr.msg_controllen = sizeof(control[i].bytes);
    }
    int received = recvmmsg(fd, headers, count, flags, NULL);
    for (int i = 0; i < received; i++) {
        size_t length = headers[i].msg_len;
        slots[i].truncated = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        slots[i].length = length > slots[i].capacity ? slots[i].capacity : length;
        slots[i].arrival_ns = 0;
        for (struct cmsghdr *message = CMSG_FIRSTHDR(&headers[i].msg_hdr); message != NULL;
             message = CMSG_NXTHDR(&headers[i].msg_hdr, message)) {
            if (message->cmsg_level == SOL_SOCKET && message->cmsg_type == SCM_TIMESTAMPNS
                && message->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec stamp;
                memcpy(&stamp, CMSG_DATA(message), sizeof(stamp));
                slots[i].arrival_ns = (int64_t)stamp.tv_sec * 1000000000 + stamp.tv_nsec;
            }
        }
    }
    return received;
}

int routerd_send_batch(int fd, const routerd_out_dgram *dgrams, unsigned int count, int flags) {
    if (count > ROUTERD_MAX_BATCH) count = ROUTERD_MAX_BATCH;
    struct mmsghdr headers[ROUTERD_MAX_BATCH];
    struct iovec vectors[ROUTERD_MAX_BATCH];
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = (void *)dgrams[i].buffer;
        vectors[i].iov_len = dgrams[i].length;
        memset(&headers[i], 0, sizeof(headers[i]));
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
        if (dgrams[i].address != NULL) {
            headers[i].msg_hdr.msg_name = (void *)dgrams[i].address;
            headers[i].msg_hdr.msg_namelen = dgrams[i].address->ss_family == AF_INET6
                ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        }
    }
    return sendmmsg(fd, headers, count, flags);
}

int routerd_enable_receive_timestamps(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
}

int64_t routerd_socket_drops(int fd) {
    uint32_t meminfo[SK_MEMINFO_VARS];
    socklen_t length = sizeof(meminfo);
    memset(meminfo, 0, sizeof(meminfo));
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0) return -1;
    if (length < sizeof(uint32_t) * (SK_MEMINFO_DROPS + 1)) return -1;
    return (int64_t)meminfo[SK_MEMINFO_DROPS];
}

int routerd_msg_waitforone(void) { return MSG_WAITFORONE; }
int routerd_so_reuseport(void) { return SO_REUSEPORT; }
int routerd_so_rcvbufforce(void) { return SO_RCVBUFFORCE; }

#include <pthread.h>
void routerd_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, 15);
    truncated[15] = 0;
    pthread_setname_np(pthread_self(), truncated);
}

// CRC-32C: the hardware instruction on x86-64 with SSE4.2, a byte table elsewhere (same results).
static uint32_t routerd_crc32c_table[256];
static int routerd_crc32c_table_ready;

static void routerd_crc32c_make_table(void) {
    for (uint32_t index = 0; index < 256; index++) {
        uint32_t crc = index;
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
        routerd_crc32c_table[index] = crc;
    }
    __atomic_store_n(&routerd_crc32c_table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t routerd_crc32c_software(uint32_t crc, const unsigned char *bytes, size_t length) {
    if (!__atomic_load_n(&routerd_crc32c_table_ready, __ATOMIC_ACQUIRE)) routerd_crc32c_make_table();
    for (size_t index = 0; index < length; index++)
        crc = routerd_crc32c_table[(crc ^ bytes[index]) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t routerd_crc32c_hardware(uint32_t crc, const unsigned char *bytes, size_t length) {
    uint64_t wide = crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        wide = __builtin_ia32_crc32di(wide, word);
        bytes += 8;
        length -= 8;
    }
    uint32_t narrow = (uint32_t)wide;
    while (length > 0) {
        narrow = __builtin_ia32_crc32qi(narrow, *bytes);
        bytes++;
        length--;
    }
    return narrow;
}
#endif

uint32_t routerd_crc32c(uint32_t crc, const void *bytes, size_t length) {
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~routerd_crc32c_hardware(crc, bytes, length);
#endif
    return ~routerd_crc32c_software(crc, bytes, length);
}

#include <sys/inotify.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

int routerd_watch_directory(const char *directory) {
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, directory, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int routerd_watch_wait(int fd, const char *file, int timeout_ms) {
    struct pollfd waiting = {.fd = fd, .events = POLLIN};
    int ready = poll(&waiting, 1, timeout_ms);
    if (ready <= 0) return ready;
    char buffer[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int matched = 0;
    for (;;) {
        ssize_t length = read(fd, buffer, sizeof buffer);
        if (length <= 0) break;
        for (char *cursor = buffer; cursor < buffer + length;) {
            struct inotify_event *event = (struct inotify_event *)cursor;
            if (event->len > 0 && strcmp(event->name, file) == 0) matched = 1;
            cursor += sizeof(struct inotify_event) + event->len;
        }
    }
    return matched;
}
