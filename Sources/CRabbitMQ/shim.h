#ifndef CRABBITMQ_SHIM_H
#define CRABBITMQ_SHIM_H
// rabbitmq-c (Debian's librabbitmq-dev) and the few helpers Swift cannot write against it directly: amqp_login
// is variadic, the method ids are cast macros, and a frame's payload is a union of pointers. The AMQP module
// wraps all of this; no type from here appears in its public API.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <poll.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/// What routerd_amqp_next_event / routerd_amqp_consume report.
enum routerd_amqp_kind {
    ROUTERD_AMQP_NONE = 0,             // nothing within the timeout
    ROUTERD_AMQP_ACK = 1,              // publisher confirm: delivery_tag, multiple
    ROUTERD_AMQP_NACK = 2,             // publisher nack: delivery_tag, multiple
    ROUTERD_AMQP_RETURN = 3,           // an unroutable mandatory message: reply_code, text, message_id
    ROUTERD_AMQP_DELIVERY = 4,         // a consumed message (routerd_amqp_consume's envelope)
    ROUTERD_AMQP_CLOSED = 5,           // the broker closed the channel or connection: reply_code, text
    ROUTERD_AMQP_FAILED = 6,           // a socket or protocol error: status, text
    ROUTERD_AMQP_OTHER = 7,            // a frame routerd does not act on (already handled)
    ROUTERD_AMQP_BLOCKED = 8,          // connection.blocked: the broker stops reading publishes (text: its reason)
    ROUTERD_AMQP_UNBLOCKED = 9,        // connection.unblocked: publishing may go on
};

/// One queue argument (`x-queue-type: quorum`) as routerd passes it: a name and a typed value.
enum routerd_amqp_argument_kind {
    ROUTERD_AMQP_ARG_STRING = 0,
    ROUTERD_AMQP_ARG_LONG = 1,
    ROUTERD_AMQP_ARG_BOOL = 2,
};

typedef struct {
    const char *name;
    int kind;
    const char *text;
    int64_t number;
} routerd_amqp_argument;

/// amqp_queue_declare with the arguments table made from `arguments` (count of them).
static inline amqp_queue_declare_ok_t *routerd_amqp_queue_declare(
    amqp_connection_state_t state, amqp_channel_t channel, amqp_bytes_t queue, int passive, int durable,
    const routerd_amqp_argument *arguments, int count) {
    amqp_table_entry_t entries[64];
    if (count > 64) count = 64;
    for (int index = 0; index < count; index++) {
        entries[index].key = amqp_cstring_bytes(arguments[index].name);
        switch (arguments[index].kind) {
        case ROUTERD_AMQP_ARG_LONG:
            entries[index].value.kind = AMQP_FIELD_KIND_I64;
            entries[index].value.value.i64 = arguments[index].number;
            break;
        case ROUTERD_AMQP_ARG_BOOL:
            entries[index].value.kind = AMQP_FIELD_KIND_BOOLEAN;
            entries[index].value.value.boolean = arguments[index].number != 0;
            break;
        default:
            entries[index].value.kind = AMQP_FIELD_KIND_UTF8;
            entries[index].value.value.bytes = amqp_cstring_bytes(arguments[index].text);
        }
    }
    amqp_table_t table;
    table.num_entries = count;
    table.entries = entries;
    return amqp_queue_declare(state, channel, queue, passive, durable, 0, 0, table);
}

typedef struct {
    int kind;
    int status;
    uint64_t delivery_tag;
    int multiple;
    uint16_t reply_code;
    char text[512];
    char message_id[128];
} routerd_amqp_event;

/// Why a TCP connect to host:port fails, as an errno (0 when it succeeds, -1 when the name does not resolve).
/// rabbitmq-c reports every refused or unreachable connect as "a socket error occurred"; this asks the system again
/// with a plain connect so that the error can say "Connection refused" or "No route to host".
static inline int routerd_amqp_connect_errno(const char *host, int port, int timeout_ms) {
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &found) != 0) return -1;
    int result = -1;
    for (struct addrinfo *address = found; address != NULL; address = address->ai_next) {
        int fd = socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC, address->ai_protocol);
        if (fd < 0) {
            result = errno;
            continue;
        }
        struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        int connected = connect(fd, address->ai_addr, address->ai_addrlen);
        result = connected == 0 ? 0 : errno;
        close(fd);
        if (result == 0) break;
    }
    freeaddrinfo(found);
    return result;
}

static inline void routerd_amqp_copy(char *destination, size_t capacity, amqp_bytes_t bytes) {
    size_t length = bytes.len < capacity - 1 ? bytes.len : capacity - 1;
    if (length > 0) memcpy(destination, bytes.bytes, length);
    destination[length] = 0;
}

static inline struct timeval routerd_amqp_timeval(int milliseconds) {
    struct timeval value;
    value.tv_sec = milliseconds / 1000;
    value.tv_usec = (milliseconds % 1000) * 1000;
    return value;
}

/// Describes an RPC reply that was not normal into `text` (the broker's close reason or the library's error).
static inline int routerd_amqp_describe_reply(amqp_rpc_reply_t reply, char *text, size_t capacity) {
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        text[0] = 0;
        return 0;
    case AMQP_RESPONSE_NONE:
        snprintf(text, capacity, "missing RPC reply");
        return -1;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(text, capacity, "%s", amqp_error_string2(reply.library_error));
        return reply.library_error;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD && reply.reply.decoded) {
            amqp_connection_close_t *close = (amqp_connection_close_t *)reply.reply.decoded;
            char reason[400];
            routerd_amqp_copy(reason, sizeof reason, close->reply_text);
            snprintf(text, capacity, "the broker closed the connection: %u %s", close->reply_code, reason);
            return close->reply_code;
        }
        if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD && reply.reply.decoded) {
            amqp_channel_close_t *close = (amqp_channel_close_t *)reply.reply.decoded;
            char reason[400];
            routerd_amqp_copy(reason, sizeof reason, close->reply_text);
            snprintf(text, capacity, "the broker closed the channel: %u %s", close->reply_code, reason);
            return close->reply_code;
        }
        snprintf(text, capacity, "the broker answered with method 0x%08x", reply.reply.id);
        return -1;
    }
    snprintf(text, capacity, "unknown reply type %d", (int)reply.reply_type);
    return -1;
}

/// amqp_login with the PLAIN mechanism (amqp_login is variadic, which Swift cannot call), telling the broker that
/// routerd understands connection.blocked (RabbitMQ sends it only to clients that say so).
static inline amqp_rpc_reply_t routerd_amqp_login(
    amqp_connection_state_t state, const char *vhost, int heartbeat_seconds, const char *user,
    const char *password) {
    amqp_table_entry_t capability;
    capability.key = amqp_cstring_bytes("connection.blocked");
    capability.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability.value.value.boolean = 1;
    amqp_table_entry_t property;
    property.key = amqp_cstring_bytes("capabilities");
    property.value.kind = AMQP_FIELD_KIND_TABLE;
    property.value.value.table.num_entries = 1;
    property.value.value.table.entries = &capability;
    amqp_table_t properties;
    properties.num_entries = 1;
    properties.entries = &property;
    return amqp_login_with_properties(state, vhost, 0, 131072, heartbeat_seconds, &properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

/// Publishes one persistent message with a content type and a message id.
static inline int routerd_amqp_publish(
    amqp_connection_state_t state, amqp_channel_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
    int mandatory, amqp_bytes_t content_type, amqp_bytes_t message_id, const void *body, size_t length) {
    amqp_basic_properties_t properties;
    memset(&properties, 0, sizeof properties);
    properties._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
    properties.content_type = content_type;
    properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    properties.message_id = message_id;
    amqp_bytes_t payload;
    payload.len = length;
    payload.bytes = (void *)body;
    return amqp_basic_publish(state, channel, exchange, routing_key, mandatory, 0, &properties, payload);
}

/// Answers a close from the broker (so it can finish closing) and describes it into `event`.
static inline void routerd_amqp_closed(amqp_connection_state_t state, amqp_frame_t *frame, routerd_amqp_event *event) {
    event->kind = ROUTERD_AMQP_CLOSED;
    if (frame->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *close = (amqp_connection_close_t *)frame->payload.method.decoded;
        event->reply_code = close->reply_code;
        char reason[400];
        routerd_amqp_copy(reason, sizeof reason, close->reply_text);
        snprintf(event->text, sizeof event->text, "the broker closed the connection: %u %s", close->reply_code,
                 reason);
        amqp_connection_close_ok_t ok;
        amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    } else {
        amqp_channel_close_t *close = (amqp_channel_close_t *)frame->payload.method.decoded;
        event->reply_code = close->reply_code;
        char reason[400];
        routerd_amqp_copy(reason, sizeof reason, close->reply_text);
        snprintf(event->text, sizeof event->text, "the broker closed the channel: %u %s", close->reply_code, reason);
        amqp_channel_close_ok_t ok;
        amqp_send_method(state, frame->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    }
}

/// Handles one method frame that arrived outside an RPC: confirms, returns, closes, a cancel by the broker.
static inline void routerd_amqp_handle_method(
    amqp_connection_state_t state, amqp_frame_t *frame, routerd_amqp_event *event) {
    switch (frame->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *ack = (amqp_basic_ack_t *)frame->payload.method.decoded;
        event->kind = ROUTERD_AMQP_ACK;
        event->delivery_tag = ack->delivery_tag;
        event->multiple = ack->multiple;
        return;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *nack = (amqp_basic_nack_t *)frame->payload.method.decoded;
        event->kind = ROUTERD_AMQP_NACK;
        event->delivery_tag = nack->delivery_tag;
        event->multiple = nack->multiple;
        return;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *returned = (amqp_basic_return_t *)frame->payload.method.decoded;
        event->kind = ROUTERD_AMQP_RETURN;
        event->reply_code = returned->reply_code;
        routerd_amqp_copy(event->text, sizeof event->text, returned->reply_text);
        // The returned message's header and body follow; its message id says which entry it was.
        amqp_message_t message;
        amqp_rpc_reply_t reply = amqp_read_message(state, frame->channel, &message, 0);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            event->kind = ROUTERD_AMQP_FAILED;
            event->status = routerd_amqp_describe_reply(reply, event->text, sizeof event->text);
            return;
        }
        if (message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
            routerd_amqp_copy(event->message_id, sizeof event->message_id, message.properties.message_id);
        }
        amqp_destroy_message(&message);
        return;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        routerd_amqp_closed(state, frame, event);
        return;
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        amqp_connection_blocked_t *blocked = (amqp_connection_blocked_t *)frame->payload.method.decoded;
        event->kind = ROUTERD_AMQP_BLOCKED;
        routerd_amqp_copy(event->text, sizeof event->text, blocked->reason);
        return;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        event->kind = ROUTERD_AMQP_UNBLOCKED;
        return;
    case AMQP_BASIC_CANCEL_METHOD:
        event->kind = ROUTERD_AMQP_CLOSED;
        snprintf(event->text, sizeof event->text, "the broker cancelled the consumer (was the queue deleted?)");
        return;
    default:
        event->kind = ROUTERD_AMQP_OTHER;
        return;
    }
}

/// Waits up to `timeout_ms` (0: only what is already there) for one frame and reports what it was.
/// Reads one frame within `timeout` and reports it; `idle` is what nothing within the timeout means to the caller.
static inline void routerd_amqp_read_frame(
    amqp_connection_state_t state, struct timeval *timeout, int idle, routerd_amqp_event *event) {
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(state, &frame, timeout);
    if (status == AMQP_STATUS_TIMEOUT) {
        event->kind = idle;
        return;
    }
    if (status != AMQP_STATUS_OK) {
        event->kind = ROUTERD_AMQP_FAILED;
        event->status = status;
        snprintf(event->text, sizeof event->text, "%s", amqp_error_string2(status));
        return;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) {
        event->kind = ROUTERD_AMQP_OTHER;
        return;
    }
    routerd_amqp_handle_method(state, &frame, event);
}

static inline void routerd_amqp_next_event(amqp_connection_state_t state, int timeout_ms, routerd_amqp_event *event) {
    memset(event, 0, sizeof *event);
    // Frames read earlier live in the connection's pool until this call frees it (the events copied what they
    // needed); without it every confirm ever received stays in memory.
    amqp_maybe_release_buffers(state);
    struct timeval timeout = routerd_amqp_timeval(timeout_ms);
    routerd_amqp_read_frame(state, &timeout, ROUTERD_AMQP_NONE, event);
}

/// Waits up to `timeout_ms` for a delivery; on ROUTERD_AMQP_DELIVERY the caller reads `envelope` and then
/// destroys it with amqp_destroy_envelope.
static inline void routerd_amqp_consume(
    amqp_connection_state_t state, int timeout_ms, amqp_envelope_t *envelope, routerd_amqp_event *event) {
    memset(event, 0, sizeof *event);
    amqp_maybe_release_buffers(state);
    struct timeval timeout = routerd_amqp_timeval(timeout_ms);
    amqp_rpc_reply_t reply = amqp_consume_message(state, envelope, &timeout, 0);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
        event->kind = ROUTERD_AMQP_DELIVERY;
        event->delivery_tag = envelope->delivery_tag;
        event->multiple = envelope->redelivered;
        return;
    }
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) {
        event->kind = ROUTERD_AMQP_NONE;
        return;
    }
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        // Something other than a delivery arrived: read it and act on it.
        struct timeval none = routerd_amqp_timeval(0);
        routerd_amqp_read_frame(state, &none, ROUTERD_AMQP_OTHER, event);
        return;
    }
    event->kind = ROUTERD_AMQP_FAILED;
    event->status = routerd_amqp_describe_reply(reply, event->text, sizeof event->text);
}

#endif
