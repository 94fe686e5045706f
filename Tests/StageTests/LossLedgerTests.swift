import Outputs
import RouterAMQP
import RouterHTTPStats
import RouterPostgres
import Testing

@Suite("loss ledger")
struct LossLedgerTests {
    private static let web = LossLedger.Key(host: "node-1", app: "web")

    private func ledger(_ sequences: [Int64], maxSenders: Int = 10, key: LossLedger.Key = web) -> LossLedger {
        var ledger = LossLedger(maxSenders: maxSenders)
        for (index, sequence) in sequences.enumerated() {
            ledger.record(key, sequence: sequence, atNanos: Int64(index))
        }
        return ledger
    }

    private func counts(_ ledger: LossLedger, _ key: LossLedger.Key = web) -> LossLedger.Counts? {
        ledger.sender(key)?.counts
    }

    @Test func record_whenSequencesArriveInOrder_countsNothingLost() {
        let ledger = ledger(Array(1...100))
        #expect(counts(ledger) == LossLedger.Counts(received: 100))
        #expect(ledger.sender(Self.web)?.newestSequence == 100)
        #expect(ledger.totals == LossLedger.Counts(received: 100))
    }

    @Test func record_whenSequencesAreSkipped_countsEachSkippedOneMissing() {
        let ledger = ledger([1, 2, 5, 6, 10])
        #expect(counts(ledger) == LossLedger.Counts(received: 5, missing: 5))
    }

    @Test func record_whenTheFirstSequenceIsNotOne_countsNothingBeforeItMissing() {
        let ledger = ledger([1000, 1001])
        #expect(counts(ledger) == LossLedger.Counts(received: 2))
    }

    @Test func record_whenASkippedSequenceArrivesLate_fillsTheGapAndCountsItOutOfOrder() {
        let ledger = ledger([1, 2, 5, 3])
        #expect(counts(ledger) == LossLedger.Counts(received: 4, missing: 1, outOfOrder: 1))
        #expect(ledger.sender(Self.web)?.newestSequence == 5)
    }

    @Test func record_whenEveryGapIsFilledLate_endsWithNothingMissing() {
        let ledger = ledger([1, 4, 3, 2, 5])
        #expect(counts(ledger) == LossLedger.Counts(received: 5, missing: 0, outOfOrder: 2))
    }

    @Test func record_whenASequenceIsSentAgain_countsADuplicate() {
        let ledger = ledger([1, 2, 2, 3, 3, 3])
        #expect(counts(ledger) == LossLedger.Counts(received: 6, duplicates: 3))
    }

    @Test func record_whenALateArrivalIsRepeated_countsTheRepeatAsADuplicate() {
        let ledger = ledger([1, 3, 2, 2])
        #expect(counts(ledger) == LossLedger.Counts(received: 4, missing: 0, duplicates: 1, outOfOrder: 1))
    }

    @Test func record_whenASequenceOlderThanTheFirstArrives_countsItOutOfOrderWithoutTouchingMissing() {
        let ledger = ledger([10, 11, 9, 9])
        #expect(counts(ledger) == LossLedger.Counts(received: 4, duplicates: 1, outOfOrder: 1))
    }

    @Test func record_atTheWindowEdge_tellsLateArrivalsFromTooOldOnes() {
        // After 1 then 4097, the window holds 2...4097: 2 is the oldest sequence still remembered.
        var ledger = ledger([1, 4097])
        #expect(counts(ledger) == LossLedger.Counts(received: 2, missing: 4095))
        ledger.record(Self.web, sequence: 2, atNanos: 10)
        #expect(counts(ledger) == LossLedger.Counts(received: 3, missing: 4094, outOfOrder: 1))
        ledger.record(Self.web, sequence: 2, atNanos: 11)
        #expect(counts(ledger) == LossLedger.Counts(received: 4, missing: 4094, duplicates: 1, outOfOrder: 1))
        // 1 is 4096 behind: out of the window, so it cannot be told from a duplicate.
        ledger.record(Self.web, sequence: 1, atNanos: 12)
        #expect(
            counts(ledger) == LossLedger.Counts(received: 5, missing: 4094, duplicates: 1, outOfOrder: 1, tooOld: 1))
    }

    @Test func record_whenTheWindowSlidesPastAGap_keepsItMissingForGood() {
        var ledger = ledger([1, 3])
        ledger.record(Self.web, sequence: 3 + Int64(LossLedger.windowSize), atNanos: 5)
        let missingAfterJump = 1 + (LossLedger.windowSize - 1)
        #expect(counts(ledger)?.missing == missingAfterJump)
        ledger.record(Self.web, sequence: 2, atNanos: 6)
        #expect(counts(ledger)?.missing == missingAfterJump)
        #expect(counts(ledger)?.tooOld == 1)
        #expect(counts(ledger)?.outOfOrder == 0)
    }

    @Test func record_whenTheWindowSlides_forgetsSequencesThatLeftIt() {
        // 1...4096 then 4097: position of 1 is reused by 4097; 4097 again is a duplicate, 2 still is too.
        var ledger = ledger(Array(1...4097))
        ledger.record(Self.web, sequence: 4097, atNanos: 1)
        ledger.record(Self.web, sequence: 2, atNanos: 2)
        #expect(counts(ledger) == LossLedger.Counts(received: 4099, duplicates: 2))
    }

    @Test func record_whenTwoRisingTooOldSequencesFollow_treatsItAsARestart() {
        var ledger = ledger(Array(1...5000))
        ledger.record(Self.web, sequence: 1, atNanos: 1)
        #expect(counts(ledger)?.tooOld == 1)
        ledger.record(Self.web, sequence: 2, atNanos: 2)
        #expect(counts(ledger) == LossLedger.Counts(received: 5002, restarts: 1))
        #expect(ledger.sender(Self.web)?.newestSequence == 2)
        ledger.record(Self.web, sequence: 3, atNanos: 3)
        ledger.record(Self.web, sequence: 5, atNanos: 4)
        ledger.record(Self.web, sequence: 2, atNanos: 5)
        #expect(counts(ledger) == LossLedger.Counts(received: 5005, missing: 1, duplicates: 1, restarts: 1))
    }

    @Test func record_whenARestartSkipsSequences_countsThemMissing() {
        var ledger = ledger(Array(1...5000))
        ledger.record(Self.web, sequence: 1, atNanos: 1)
        ledger.record(Self.web, sequence: 4, atNanos: 2)
        #expect(counts(ledger) == LossLedger.Counts(received: 5002, missing: 2, restarts: 1))
    }

    @Test func record_whenATooOldSequenceIsFollowedByANewOne_isNoRestart() {
        var ledger = ledger(Array(1...5000))
        ledger.record(Self.web, sequence: 10, atNanos: 1)
        ledger.record(Self.web, sequence: 5001, atNanos: 2)
        ledger.record(Self.web, sequence: 11, atNanos: 3)
        #expect(counts(ledger) == LossLedger.Counts(received: 5003, tooOld: 2))
        #expect(ledger.sender(Self.web)?.newestSequence == 5001)
    }

    @Test func record_whenTwoFallingTooOldSequencesFollow_isNoRestart() {
        var ledger = ledger(Array(1...5000))
        ledger.record(Self.web, sequence: 20, atNanos: 1)
        ledger.record(Self.web, sequence: 19, atNanos: 2)
        #expect(counts(ledger) == LossLedger.Counts(received: 5002, tooOld: 2))
    }

    @Test func record_whenTheJumpIsHuge_saturatesInsteadOfOverflowing() {
        var ledger = ledger([Int64.min, Int64.max])
        #expect(counts(ledger)?.missing == Int.max - 1)
        ledger.record(Self.web, sequence: Int64.max, atNanos: 3)
        #expect(counts(ledger)?.duplicates == 1)
        ledger.record(Self.web, sequence: 0, atNanos: 4)
        #expect(counts(ledger)?.tooOld == 1)
    }

    @Test func record_keepsSendersApart() {
        var ledger = LossLedger(maxSenders: 10)
        let api = LossLedger.Key(host: "node-1", app: "api")
        let other = LossLedger.Key(host: "node-2", app: "web")
        for sequence: Int64 in [1, 2, 4] { ledger.record(Self.web, sequence: sequence, atNanos: 0) }
        for sequence: Int64 in [1, 1] { ledger.record(api, sequence: sequence, atNanos: 0) }
        for sequence: Int64 in [7, 6] { ledger.record(other, sequence: sequence, atNanos: 0) }
        #expect(counts(ledger, Self.web) == LossLedger.Counts(received: 3, missing: 1))
        #expect(counts(ledger, api) == LossLedger.Counts(received: 2, duplicates: 1))
        #expect(counts(ledger, other) == LossLedger.Counts(received: 2, outOfOrder: 1))
        #expect(ledger.totals == LossLedger.Counts(received: 7, missing: 1, duplicates: 1, outOfOrder: 1))
        #expect(ledger.senderCount == 3)
    }

    @Test func record_whenFull_evictsTheLeastRecentlySeenSenderAndCountsIt() {
        var ledger = LossLedger(maxSenders: 2)
        let a = LossLedger.Key(host: "a", app: "x")
        let b = LossLedger.Key(host: "b", app: "x")
        let c = LossLedger.Key(host: "c", app: "x")
        ledger.record(a, sequence: 1, atNanos: 1)
        ledger.record(b, sequence: 1, atNanos: 2)
        ledger.record(a, sequence: 3, atNanos: 3)  // a is now the most recent; b the least
        ledger.record(c, sequence: 1, atNanos: 4)
        #expect(ledger.evictions == 1)
        #expect(ledger.senderCount == 2)
        #expect(ledger.sender(b) == nil)
        #expect(ledger.senders.map(\.key) == [c, a])
        #expect(ledger.sender(a)?.lastSeenNanos == 3)
        // The evicted sender's counts stay in the totals.
        #expect(ledger.totals == LossLedger.Counts(received: 4, missing: 1))
        // Coming back, b starts afresh.
        ledger.record(b, sequence: 9, atNanos: 5)
        #expect(ledger.evictions == 2)
        #expect(ledger.sender(a) == nil)
        #expect(counts(ledger, b) == LossLedger.Counts(received: 1))
    }

    @Test func record_whenASlotIsReused_startsWithAnEmptyWindow() {
        var ledger = LossLedger(maxSenders: 1)
        let a = LossLedger.Key(host: "a", app: "x")
        let b = LossLedger.Key(host: "b", app: "x")
        for sequence: Int64 in 1...3 { ledger.record(a, sequence: sequence, atNanos: 0) }
        ledger.record(b, sequence: 10, atNanos: 1)
        ledger.record(b, sequence: 2, atNanos: 2)
        #expect(counts(ledger, b) == LossLedger.Counts(received: 2, outOfOrder: 1))
    }
}
