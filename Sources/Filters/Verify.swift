public import RouterCore
import RouterSupport

/// `verify`: passes entries whose JWT and checksum hold, as the data-diode seed's receiver checks them; the rest go
/// to `rejected` with a reason and a detail.
///
/// The token (field `token`) must be an HS256 JWT signed with `secret` whose claims pass the checks of the seed's
/// `jwt.decode(token, key, algorithms=["HS256"])` (PyJWT): `iat`, `nbf` and `exp` when present, no audience, and,
/// when the options ask for them, an issuer, an audience, required claims and a leeway. The checksum (field `checksum`) must
/// be the MD5 hex digest of the entry without that field, written as Python's `json.dumps(entry, sort_keys=True)`.
/// "Now" is each entry's arrival time (``Batch/arrivalNanos(of:)``). Each entry is parsed once; the parser accepts what Python's `json.loads`
/// accepts (see ``JSONDocument``) and never traps on any byte string.
public final class Verify: FilterStage {
    /// The reasons an entry is refused, in the order of the `rejected{reason}` counter.
    public static let reasons = [
        "not_json", "missing_token", "malformed_token", "bad_signature", "expired", "not_yet_valid", "wrong_issuer",
        "wrong_audience", "missing_checksum", "bad_checksum",
    ]

    /// The `verify` declaration.
    public static let declaration = StageDeclaration(
        type: "verify",
        summary: "Checks each entry's HS256 JWT and MD5 checksum as the data-diode seed does; the rest go to "
            + "`rejected` with a reason.",
        options: [
            secret,
            issuer,
            audience,
            require,
            leeway,
            tokenField,
            checksum,
            checksumField,
        ],
        ports: [
            PortDeclaration(
                "rejected",
                "Entries refused, each with its reason (not_json, missing_token, malformed_token, bad_signature, "
                    + "expired, not_yet_valid, wrong_issuer, wrong_audience, missing_checksum, bad_checksum) and a detail."
            )
        ],
        counters: [CounterDeclaration("rejected", label: "reason", values: reasons, "Entries refused, by reason.")],
        example: StageExample(#"secret: "${SECRET_KEY:-an example key that is at least 32 bytes}""#),
        check: { options in
            var problems: [String] = []
            if (try? options.value(Verify.secret))?.isEmpty == true {
                problems.append("'secret' is empty: set it, usually from \"${SECRET_KEY:?set SECRET_KEY}\"")
            }
            let token = (try? options.value(Verify.tokenField)) ?? ""
            let checksum = (try? options.value(Verify.checksumField)) ?? ""
            if token.isEmpty { problems.append("'token_field' is empty") }
            if checksum.isEmpty { problems.append("'checksum_field' is empty") }
            if token == checksum && (try? options.value(Verify.checksum)) != false {
                problems.append("'token_field' and 'checksum_field' are both '\(token)'")
            }
            if (try? options.value(Verify.issuer))??.isEmpty == true {
                problems.append("'issuer' is empty: leave it out to check no issuer")
            }
            if (try? options.value(Verify.audience))??.isEmpty == true {
                problems.append("'audience' is empty: leave it out to refuse tokens that name an audience")
            }
            if ((try? options.value(Verify.require)) ?? []).contains(where: \.isEmpty) {
                problems.append("'require' lists an empty claim name")
            }
            return problems
        }
    )

    static let secret = StageOption<String>(
        OptionDeclaration(
            "secret", .string, .required,
            "The HS256 key (its UTF-8 bytes), usually `\"${SECRET_KEY:?set SECRET_KEY}\"`. An empty secret is "
                + "refused; one shorter than 32 bytes is accepted with a warning in the log. Every token signed "
                + "with another key is rejected as bad_signature."))

    static let issuer = StageOption<String?>(
        OptionDeclaration(
            "issuer", .string, .optional,
            "The `iss` claim every token must carry, exactly; any other, or none, is rejected as wrong_issuer. "
                + "Unset (the default), `iss` is not checked, as the seed's receiver passes no issuer to "
                + "`jwt.decode`; the seed's client signs with `udp_client`, so `issuer: udp_client` refuses tokens "
                + "made by anyone else who holds the key."))

    static let audience = StageOption<String?>(
        OptionDeclaration(
            "audience", .string, .optional,
            "The audience (`aud`) tokens must name, as PyJWT's `audience`: `aud` is it, or a list that holds it. "
                + "Unset (the default), a token that names any audience is rejected as wrong_audience, as PyJWT "
                + "does."))

    static let require = StageOption<[String]>(
        OptionDeclaration(
            "require", .list(.string), .defaultValue(.list([])),
            "Claims every token must carry, not null (PyJWT's `options={\"require\": [...]}`), e.g. `[exp, iss]`; "
                + "a token without one is rejected as malformed_token (wrong_issuer for `iss` with `issuer` set). "
                + "Empty (the default), as the seed: a token without `exp` never expires."))

    static let leeway = StageOption<Duration>(
        OptionDeclaration(
            "leeway", .duration(.zero...(.seconds(300))), .defaultValue(.duration(.zero)),
            "Clock skew allowed between senders and routerd (PyJWT's `leeway`): a token is expired once `exp` + "
                + "leeway is not after the arrival time, and not yet valid while `nbf` or `iat` is after the arrival "
                + "time + leeway. 0 (the default) as the seed; a larger value lets a captured message be replayed "
                + "for longer."))

    static let tokenField = StageOption<String>(
        OptionDeclaration(
            "token_field", .string, .defaultValue(.string("token")),
            "The top-level field that holds the JWT."))

    static let checksum = StageOption<Bool>(
        OptionDeclaration(
            "checksum", .bool, .defaultValue(.bool(true)),
            "Whether entries must carry a checksum. `false` checks only the token: the checksum field, if any, "
                + "is not examined (and an entry altered in transit passes if its token is good)."))

    static let checksumField = StageOption<String>(
        OptionDeclaration(
            "checksum_field", .string, .defaultValue(.string("checksum")),
            "The top-level field that holds the MD5 hex digest (lowercase) of the entry without that field, as "
                + "Python's `json.dumps(entry, sort_keys=True)` writes it."))

    /// Port index of `rejected`.
    public static let rejectedPort = 1

    private enum Refusal: Int {
        case notJSON, missingToken, malformedToken, badSignature, expired, notYetValid, wrongIssuer, wrongAudience
        case missingChecksum, badChecksum
    }

    private struct Rejection {
        var refusal: Refusal
        var detail: String
        var offset: Int32 = -1
    }

    private let checker: HS256Token
    private let tokenField: [UInt8]
    private let tokenFieldName: String
    private let checksumField: [UInt8]?
    private let checksumFieldName: String
    private let reasonIDs: [Reason]
    private let rejectedCounters: [Counter]

    /// Makes the filter.
    public init(context: StageContext) throws {
        let options = context.options
        let secret = try options.value(Verify.secret)
        guard !secret.isEmpty else { throw StageError("'secret' is empty") }
        if secret.utf8.count < 32 {
            context.logger.warning(
                "the verify secret is shorter than 32 bytes; HS256 keys should be at least as long as the hash",
                metadata: ["secret_bytes": "\(secret.utf8.count)"])
        }
        let leeway = try options.value(Verify.leeway)
        checker = HS256Token(
            secret: Array(secret.utf8),
            rules: HS256Token.Rules(
                issuer: try options.value(Verify.issuer), audience: try options.value(Verify.audience),
                required: try options.value(Verify.require), leewaySeconds: Double(leeway.nanoseconds) / 1e9))
        tokenFieldName = try options.value(Verify.tokenField)
        tokenField = Array(tokenFieldName.utf8)
        checksumFieldName = try options.value(Verify.checksumField)
        checksumField = try options.value(Verify.checksum) ? Array(checksumFieldName.utf8) : nil
        reasonIDs = Verify.reasons.map { Reason($0) }
        rejectedCounters = Verify.reasons.map { context.counters.counter("rejected", label: "reason", value: $0) }
    }

    /// Verifies each entry and routes it.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        // "Now" is each entry's arrival time (the kernel's receive time of its datagram), so a message that was
        // valid when it reached the socket is judged valid however long it then waited there.
        let batchNanos = batch.receivedAtNanos != 0 ? batch.receivedAtNanos : wallClockNanos()
        var document = JSONDocument()
        var tokenScratch = HS256Token.Scratch()
        var text: [UInt8] = []
        var dumped: [UInt8] = []
        var details = batch.details
        var counts = [Int](repeating: 0, count: Verify.reasons.count)
        var routed = batch.bytes.withUnsafeBytes { all in
            batch.partition(portCount: 2) { event in
                let start = Int(event.start)
                let end = start + Int(event.count)
                guard start >= 0, end <= all.count else { return Verify.rejectedPort }
                let rejection = verify(
                    UnsafeRawBufferPointer(rebasing: all[start..<end]), truncated: event.flags.contains(.truncated),
                    nowSeconds: Double(batchNanos &+ Int64(event.arrivalOffsetMicros) &* 1000) / 1e9,
                    document: &document, tokenScratch: &tokenScratch, text: &text,
                    dumped: &dumped)
                guard let rejection else { return 0 }
                counts[rejection.refusal.rawValue] += 1
                event.reason = reasonIDs[rejection.refusal.rawValue]
                event.reasonOffset = rejection.offset
                event.detail = Int32(details.count)
                details.append(rejection.detail)
                return Verify.rejectedPort
            }
        }
        for (index, count) in counts.enumerated() where count > 0 { rejectedCounters[index].add(count) }
        if details.count != batch.details.count {
            for index in routed.indices { routed[index].details = details }
        }
        output.emit(partitioned: routed)
    }

    /// Why `entry` is refused, or nil when it passes.
    private func verify(
        _ entry: UnsafeRawBufferPointer, truncated: Bool, nowSeconds: Double, document: inout JSONDocument,
        tokenScratch: inout HS256Token.Scratch, text: inout [UInt8], dumped: inout [UInt8]
    ) -> Rejection? {
        if truncated {
            return Rejection(refusal: .notJSON, detail: "truncated at max_datagram_bytes", offset: Int32(entry.count))
        }
        if let error = document.parse(entry) {
            return Rejection(refusal: .notJSON, detail: error.description, offset: Int32(clamping: error.offset))
        }
        guard let root = document.rootKind, root == .object else {
            let kind = document.rootKind.map(Verify.name(of:)) ?? "value"
            return Rejection(refusal: .notJSON, detail: "a JSON \(kind), not an object", offset: 0)
        }

        guard let token = document.member(tokenField, in: entry) else {
            return Rejection(refusal: .missingToken, detail: "no '\(tokenFieldName)' field")
        }
        if HS256Token.isFalsy(at: token, document, entry) {
            // The seed's receiver refuses a token that Python finds false (`if not token`) before decoding it.
            let shown: String
            switch document.kind(at: token) {
            case .null: shown = "null"
            case .false: shown = "false"
            case .integer, .float: shown = "0"
            default: shown = "empty"
            }
            return Rejection(refusal: .missingToken, detail: "'\(tokenFieldName)' is \(shown)")
        }
        guard let tokenBytes = stringBytes(at: token, document, entry, &text) else {
            let kind = document.kind(at: token).map(Verify.name(of:)) ?? "value"
            return Rejection(refusal: .malformedToken, detail: "'\(tokenFieldName)' is a \(kind), not a string")
        }
        let outcome: HS256Token.TokenCheck
        if let range = tokenBytes {
            outcome = checker.check(
                UnsafeRawBufferPointer(rebasing: entry[range]), nowSeconds: nowSeconds, scratch: &tokenScratch)
        } else {
            outcome = text.withUnsafeBytes { checker.check($0, nowSeconds: nowSeconds, scratch: &tokenScratch) }
        }
        switch outcome {
        case .valid: break
        case .malformed(let detail): return Rejection(refusal: .malformedToken, detail: detail)
        case .badSignature(let detail): return Rejection(refusal: .badSignature, detail: detail)
        case .expired(let detail): return Rejection(refusal: .expired, detail: detail)
        case .notYetValid(let detail): return Rejection(refusal: .notYetValid, detail: detail)
        case .wrongIssuer(let detail): return Rejection(refusal: .wrongIssuer, detail: detail)
        case .wrongAudience(let detail): return Rejection(refusal: .wrongAudience, detail: detail)
        }

        guard let checksumField else { return nil }
        guard let checksum = document.member(checksumField, in: entry) else {
            return Rejection(refusal: .missingChecksum, detail: "no '\(checksumFieldName)' field")
        }
        guard let checksumBytes = stringBytes(at: checksum, document, entry, &text) else {
            let kind = document.kind(at: checksum).map(Verify.name(of:)) ?? "value"
            return Rejection(refusal: .badChecksum, detail: "'\(checksumFieldName)' is a \(kind), not a string")
        }
        dumped.removeAll(keepingCapacity: true)
        document.appendPythonDumps(of: entry, omittingTopLevelKey: checksumField, to: &dumped)
        let matches = dumped.withUnsafeBytes { content in
            if let range = checksumBytes {
                return DiodeMessage.md5Matches(content, hex: UnsafeRawBufferPointer(rebasing: entry[range]))
            }
            return text.withUnsafeBytes { DiodeMessage.md5Matches(content, hex: $0) }
        }
        if matches { return nil }
        let given = checksumBytes.map { Array(entry[$0]) } ?? text
        let shown = String(decoding: given.prefix(64), as: UTF8.self) + (given.count > 64 ? "..." : "")
        let actual = String(decoding: DiodeMessage.md5Hex(dumped), as: UTF8.self)
        return Rejection(
            refusal: .badChecksum, detail: "'\(checksumFieldName)' is '\(shown)', the entry's is \(actual)")
    }

    /// A string value's bytes: `.some(range)` in the entry when it has no escapes, `.some(nil)` when decoded into
    /// `text`, nil when the value is not a string.
    private func stringBytes(
        at index: Int, _ document: JSONDocument, _ entry: UnsafeRawBufferPointer, _ text: inout [UInt8]
    ) -> Range<Int>?? {
        if let range = document.rawString(at: index) { return .some(range) }
        text.removeAll(keepingCapacity: true)
        guard document.decodeString(at: index, in: entry, into: &text) else { return nil }
        return .some(nil)
    }

    private static func name(of kind: JSONDocument.Kind) -> String {
        switch kind {
        case .object: "object"
        case .array: "array"
        case .string: "string"
        case .integer, .float: "number"
        case .true, .false: "boolean"
        case .null: "null"
        }
    }
}
