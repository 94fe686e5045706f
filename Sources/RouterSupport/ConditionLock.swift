#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A mutex with a condition variable, for the few places that must block a thread (output queues).
package final class ConditionLock: @unchecked Sendable {
    // Safe to share: the pthread objects are heap-allocated once and only used through pthread calls.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    private let conditionCount: Int

    /// Makes a lock with `conditions` separate condition variables (waiters of different kinds wait on their own,
    /// so that a wake-up reaches only the threads that can proceed).
    package init(conditions count: Int = 1) {
        conditionCount = max(1, count)
        conditions = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: conditionCount)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if canImport(Glibc)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        for index in 0..<conditionCount { pthread_cond_init(conditions + index, &attributes) }
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        for index in 0..<conditionCount { pthread_cond_destroy(conditions + index) }
        pthread_mutex_destroy(mutex)
        conditions.deallocate()
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }

    package func unlock() { pthread_mutex_unlock(mutex) }

    /// Wakes every thread waiting on condition `index`.
    package func broadcast(_ index: Int = 0) { pthread_cond_broadcast(conditions + index) }

    /// Wakes one thread waiting on condition `index`.
    package func signal(_ index: Int = 0) { pthread_cond_signal(conditions + index) }

    /// Waits for a wake-up on condition `index` (the lock must be held).
    package func wait(_ index: Int = 0) { pthread_cond_wait(conditions + index, mutex) }

    /// Waits for a wake-up on condition `index` until the monotonic deadline in nanoseconds; false when the
    /// deadline passed.
    package func wait(_ index: Int = 0, untilMonotonicNanos deadline: Int64) -> Bool {
        var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(conditions + index, mutex, &time) == 0
    }

    package func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// Monotonic time in nanoseconds (the clock ``ConditionLock`` waits on).
package func monotonicNanos() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

/// Wall-clock time in nanoseconds since the Unix epoch.
package func wallClockNanos() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    package var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        return scaled &+ attoseconds / 1_000_000_000
    }
}
