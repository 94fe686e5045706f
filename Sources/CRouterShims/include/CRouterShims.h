#ifndef CROUTERSHIMS_H
#define CROUTERSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

/// One datagram slot for a batched receive: where its bytes go and where the sender's address lands.
typedef struct routerd_dgram {
    void *buffer;
    size_t capacity;
    struct sockaddr_storage address;
    /// Out: bytes received (never more than capacity).
    size_t length;
    /// Out: non-zero when the datagram was larger than capacity (MSG_TRUNC).
    int truncated;
    /// Out: when the kernel received the datagram (SO_TIMESTAMPNS, CLOCK_REALTIME), in nanoseconds since the Unix
    /// epoch; 0 when the socket does not stamp datagrams.
    int64_t arrival_ns;
} routerd_dgram;

/// recvmmsg(2) over `count` slots. Returns the number of datagrams received, or -1 with errno set.
/// `flags` is passed through (MSG_WAITFORONE, MSG_DONTWAIT).
int routerd_recv_batch(int fd, routerd_dgram *slots, unsigned int count, int flags);

/// One datagram to send.
typedef struct routerd_out_dgram {
    const void *buffer;
    size_t length;
    const struct sockaddr_storage *address; // NULL for a connected socket
} routerd_out_dgram;

/// sendmmsg(2) over `count` datagrams. Returns how many were sent, or -1 with errno set.
int routerd_send_batch(int fd, const routerd_out_dgram *dgrams, unsigned int count, int flags);

/// Asks the kernel to stamp each datagram with its receive time (SO_TIMESTAMPNS). Returns 0, or -1 with errno set.
int routerd_enable_receive_timestamps(int fd);

/// Kernel drop count for this socket (SO_MEMINFO, SK_MEMINFO_DROPS), or -1 when unavailable.
int64_t routerd_socket_drops(int fd);

/// Constants that Swift's Glibc overlay does not carry.
int routerd_msg_waitforone(void);
int routerd_so_reuseport(void);
int routerd_so_rcvbufforce(void);

/// Names the calling thread (at most 15 bytes are kept), for top and gdb.
void routerd_set_thread_name(const char *name);

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (0 to start): SSE4.2's crc32 instruction where the
/// CPU has it, a table otherwise. Disk-buffer records carry it.
uint32_t routerd_crc32c(uint32_t crc, const void *bytes, size_t length);


/// inotify on a directory for a config file's changes: an fd that reports files closed after writing, moved
/// in, created or deleted there; -1 with errno set.
int routerd_watch_directory(const char *directory);

/// Waits up to `timeout_ms` for events on a routerd_watch_directory fd. Returns 1 when one of them names `file`,
/// 0 when none did (or none came), -1 with errno set.
int routerd_watch_wait(int fd, const char *file, int timeout_ms);

#endif
