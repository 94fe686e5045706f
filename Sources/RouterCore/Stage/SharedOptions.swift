/// Options that many stages have, declared once with one default each.
///
/// The runtime adds ``queueMaxEvents``, ``whenFull``, ``reconnectBackoffMax``, ``drainTimeout`` and `buffer` to every output
/// itself (the ``OutputDriver`` reads them); a stage that connects somewhere lists ``connectTimeout`` in its
/// declaration, and an output that buffers by count and age lists ``flushCount`` and ``flushInterval`` and puts
/// their values in its ``OutputTraits``.
public enum SharedOptions {
    /// `queue_max_events`, on every output.
    public static let queueMaxEvents = StageOption<Int>.integer(
        "queue_max_events", 1...100_000_000, default: 20_000,
        "Most events waiting in the output's queue. Bounds memory (about 300 bytes per stock entry); what happens "
            + "past it is `when_full`.")

    /// `when_full`, on every output.
    public static let whenFull = StageOption<String>.oneOf(
        "when_full", WhenFull.allCases.map(\.rawValue), default: WhenFull.block.rawValue,
        "`block`: the receiving thread waits for room (the kernel then drops, counted as kernel_drops); "
            + "`drop_newest`: the new batch is dropped, counted as events_dropped{reason=\"queue_full\"}.")

    /// `reconnect_backoff_max`, on every output and on stages that connect.
    public static let reconnectBackoffMax = StageOption<Duration>.duration(
        "reconnect_backoff_max", .milliseconds(100)...(.seconds(3600)), default: .seconds(5),
        "Longest wait between attempts while the stage fails (a connect, a write): the wait starts at 100ms and "
            + "doubles up to this, with random jitter so that many routers do not retry in step.")

    /// `drain_timeout`, on every output and on stages that connect.
    public static let drainTimeout = StageOption<Duration>.duration(
        "drain_timeout", .zero...(.seconds(3600)), default: .seconds(10),
        "At shutdown, how long to keep retrying a destination that fails before counting what is still held or "
            + "queued as dropped (by the output's reason: write_failed, broker_unavailable, database_unavailable). "
            + "Keep it below the router's shutdown_timeout, less one connect_timeout.")

    /// `connect_timeout`, on stages that connect somewhere.
    public static let connectTimeout = StageOption<Duration>.duration(
        "connect_timeout", .milliseconds(100)...(.seconds(300)), default: .seconds(5),
        "Longest a connect, the login or the set-up after it may take before the attempt counts as failed and is "
            + "retried.")

    /// `flush_count`, on outputs that buffer.
    public static let flushCount = StageOption<Int>.integer(
        "flush_count", 1...1_000_000, default: 100,
        "Write when this many entries are buffered. Larger means fewer writes and more entries at risk if the "
            + "machine (not routerd: it flushes on shutdown) dies.")

    /// `flush_interval`, on outputs that buffer.
    public static let flushInterval = StageOption<Duration>.duration(
        "flush_interval", .milliseconds(1)...(.seconds(86400)), default: .seconds(5),
        "Write when the oldest buffered entry is this old, however few there are.")

    /// The options the runtime adds to every output.
    public static let output: [any OptionDeclaring] = [
        queueMaxEvents, whenFull, reconnectBackoffMax, drainTimeout, BufferSettings.option,
    ]
}
