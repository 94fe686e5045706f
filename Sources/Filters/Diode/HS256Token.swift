internal import Crypto

#if canImport(FoundationEssentials)
    internal import FoundationEssentials
#else
    internal import Foundation
#endif

/// JSON Web Tokens signed with HMAC-SHA256 (`alg: HS256`, RFC 7519), as PyJWT makes and checks them; the
/// cryptography is swift-crypto's.
///
/// A checker is made once with the key and the rules and is then used from any thread. Checking never traps: a
/// token that is not three base64url parts of JSON is ``TokenCheck/malformed(_:)``.
public struct HS256Token: @unchecked Sendable {
    // Safe to share: `key` (SymmetricKey, not marked Sendable by swift-crypto 3) is never mutated after init, and
    // HMAC only reads its bytes; every other stored property is a Sendable value.
    /// The header every token this type makes carries (PyJWT writes the same one).
    static let header = Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8)

    /// The outcome of checking one token, with words for the dead-letter detail.
    public enum TokenCheck: Sendable, Equatable {
        /// Signature, expiry, not-before, issued-at, issuer and audience all hold.
        case valid
        /// Not a JWT, a claim of the wrong type (`exp` not an integer, `sub` not a string), or a claim that
        /// ``Rules/required`` lists is absent.
        case malformed(String)
        /// The header names no algorithm or another than HS256 (`none` included), or the signature does not match.
        case badSignature(String)
        /// `exp` is not after now minus the leeway.
        case expired(String)
        /// `nbf` or `iat` is after now plus the leeway.
        case notYetValid(String)
        /// An issuer is expected and `iss` is absent, not a string, or another.
        case wrongIssuer(String)
        /// The token names an audience (`aud`) that is not the expected one, or none is expected.
        case wrongAudience(String)
    }

    /// What a token's claims must hold, beyond its signature: PyJWT's `jwt.decode` arguments.
    public struct Rules: Sendable, Equatable {
        /// The `iss` every token must carry (PyJWT's `issuer`); nil checks no issuer, as `jwt.decode` without one.
        public var issuer: String?
        /// The audience the tokens are for (PyJWT's `audience`); nil refuses every token that names one.
        public var audience: String?
        /// Claims that must be present and not null (PyJWT's `options={"require": [...]}`).
        public var required: [String]
        /// Seconds of clock skew allowed on `exp`, `nbf` and `iat` (PyJWT's `leeway`).
        public var leewaySeconds: Double

        /// The rules of `jwt.decode(token, key, algorithms=["HS256"])`, which the seed's receiver calls: no
        /// issuer, no audience, no claim required, no leeway.
        public init(issuer: String? = nil, audience: String? = nil, required: [String] = [], leewaySeconds: Double = 0)
        {
            self.issuer = issuer
            self.audience = audience
            self.required = required
            self.leewaySeconds = leewaySeconds
        }
    }

    private let key: SymmetricKey
    private let rules: Rules
    private let issuer: [UInt8]?
    private let audience: [UInt8]?
    private let required: [[UInt8]]

    /// Makes a checker for tokens signed with `secret` (its bytes are the HMAC key, as PyJWT uses the UTF-8 of a
    /// string key) whose claims hold `rules`.
    public init(secret: some Collection<UInt8>, rules: Rules) {
        key = SymmetricKey(data: Array(secret))
        self.rules = rules
        issuer = rules.issuer.map { Array($0.utf8) }
        audience = rules.audience.map { Array($0.utf8) }
        required = rules.required.map { Array($0.utf8) }
    }

    /// Signs `claims` (a JSON object's text) with `secret`: `base64url(header).base64url(claims).base64url(mac)`.
    public static func sign(claims: some Collection<UInt8>, secret: some Collection<UInt8>) -> String {
        var signingInput = Base64URL.encode(header)
        signingInput += "."
        signingInput += Base64URL.encode(Array(claims))
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array(signingInput.utf8), using: SymmetricKey(data: Array(secret)))
        return signingInput + "." + Base64URL.encode(Array(mac))
    }

    /// Checks a compact token (its ASCII text) at `nowSeconds` since the Unix epoch, in PyJWT's order: the form
    /// (three base64url parts, a JSON header), the header's `kid`, `crit` and `b64`, the algorithm, the signature
    /// (compared in constant time), the payload (a JSON object), then the claims: those required, `iat`, `nbf`,
    /// `exp`, `iss`, `aud`, `sub`, `jti`. `scratch` is reused storage for decoded parts.
    public func check(
        _ token: UnsafeRawBufferPointer, nowSeconds: Double, scratch: inout HS256Token.Scratch
    ) -> TokenCheck {
        // Work on locals so that reading one buffer while the document changes is never an overlapping access.
        var decoded = scratch.decoded
        var payload = scratch.payload
        var document = scratch.document
        // The key's inner and outer pads, hashed once per scratch (per batch) rather than once per token.
        let keyed = scratch.keyed ?? HMAC<SHA256>(key: key)
        scratch = Scratch()
        defer {
            scratch.decoded = decoded
            scratch.payload = payload
            scratch.document = document
            scratch.keyed = keyed
        }
        var firstDot = -1
        var secondDot = -1
        var dots = 0
        for (offset, byte) in token.enumerated() where byte == 0x2E {
            dots += 1
            if dots == 1 { firstDot = offset } else if dots == 2 { secondDot = offset } else { break }
        }
        guard dots == 2 else {
            let parts = dots > 2 ? "more than 3" : "\(dots + 1)"
            return .malformed("a JWT has 3 parts separated by '.', this token has \(parts)")
        }
        let signed = UnsafeRawBufferPointer(rebasing: token[0..<secondDot])

        decoded.removeAll(keepingCapacity: true)
        guard Base64URL.decode(UnsafeRawBufferPointer(rebasing: token[0..<firstDot]), into: &decoded) else {
            return .malformed("the header is not base64url")
        }
        guard decoded.withUnsafeBytes({ document.parse($0) }) == nil, document.rootKind == .object else {
            return .malformed("the header is not a JSON object")
        }
        // Judged now, while the document holds the header; returned after the other parts' form, as PyJWT does.
        let headerProblem = decoded.withUnsafeBytes { header in Self.checkHeader(header, &document) }

        payload.removeAll(keepingCapacity: true)
        let payloadPart = UnsafeRawBufferPointer(rebasing: token[(firstDot + 1)..<secondDot])
        guard Base64URL.decode(payloadPart, into: &payload) else {
            return .malformed("the payload is not base64url")
        }
        decoded.removeAll(keepingCapacity: true)
        guard Base64URL.decode(UnsafeRawBufferPointer(rebasing: token[(secondDot + 1)...]), into: &decoded) else {
            return .malformed("the signature is not base64url")
        }
        if let headerProblem { return headerProblem }

        var authenticator = keyed
        authenticator.update(data: signed)
        // MessageAuthenticationCode's == is swift-crypto's constant-time safeCompare, as in
        // HMAC.isValidAuthenticationCode, which would hash the key's pads again for every token.
        guard authenticator.finalize() == decoded else {
            return .badSignature("the signature does not match the secret")
        }
        return payload.withUnsafeBytes { payload in checkClaims(payload, nowSeconds: nowSeconds, document: &document) }
    }

    private static let algName = Array("alg".utf8)
    private static let hs256 = Array("HS256".utf8)
    private static let kidName = Array("kid".utf8)
    private static let critName = Array("crit".utf8)
    private static let b64Name = Array("b64".utf8)
    private static let iatName = Array("iat".utf8)
    private static let nbfName = Array("nbf".utf8)
    private static let expName = Array("exp".utf8)
    private static let issName = Array("iss".utf8)
    private static let audName = Array("aud".utf8)
    private static let subName = Array("sub".utf8)
    private static let jtiName = Array("jti".utf8)

    /// What is wrong with a parsed header (`document` holds it), in PyJWT's order, or nil.
    private static func checkHeader(_ header: UnsafeRawBufferPointer, _ document: inout JSONDocument) -> TokenCheck? {
        if let kid = document.member(kidName, in: header), document.kind(at: kid) != .string {
            return .malformed("the header's 'kid' is not a string")
        }
        let b64 = document.member(b64Name, in: header)
        if let crit = document.member(critName, in: header) {
            // PyJWT supports one critical extension, `b64`, and only when the header carries it.
            guard let elements = document.elements(at: crit), !elements.isEmpty else {
                return .malformed("the header's 'crit' is not a non-empty list")
            }
            var name: [UInt8] = []
            for element in elements {
                name.removeAll(keepingCapacity: true)
                guard document.decodeString(at: element, in: header, into: &name) else {
                    return .malformed("the header's 'crit' lists a value that is not a string")
                }
                guard name == b64Name else {
                    let shown = String(decoding: name.prefix(32), as: UTF8.self)
                    return .malformed("the header's 'crit' lists '\(shown)', an extension that is not supported")
                }
                if b64 == nil { return .malformed("the header's 'crit' lists 'b64', which the header lacks") }
            }
        }
        if let b64, document.kind(at: b64) == .false {
            return .malformed("the header's 'b64' is false: detached payloads are not supported")
        }
        guard let alg = document.member(algName, in: header) else {
            return .badSignature("the header names no algorithm ('alg'): only HS256 is accepted")
        }
        var name: [UInt8] = []  // only filled for a refusal or an escaped name
        let isHS256: Bool
        if let range = document.rawString(at: alg) {
            isHS256 = UnsafeRawBufferPointer(rebasing: header[range]).elementsEqual(hs256)
            if !isHS256 { name = Array(header[range]) }
        } else if document.decodeString(at: alg, in: header, into: &name) {
            isHS256 = name == hs256
        } else {
            return .badSignature("the header's 'alg' is not a string: only HS256 is accepted")
        }
        guard isHS256 else {
            let shown = String(decoding: name.prefix(32), as: UTF8.self)
            return .badSignature("algorithm '\(shown)' is refused: only HS256 is accepted")
        }
        return nil
    }

    private func checkClaims(
        _ payload: UnsafeRawBufferPointer, nowSeconds: Double, document: inout JSONDocument
    ) -> TokenCheck {
        guard document.parse(payload) == nil, document.rootKind == .object else {
            return .malformed("the payload is not a JSON object")
        }
        for (index, name) in required.enumerated() {
            guard let claim = document.member(name, in: payload), document.kind(at: claim) != .null else {
                let claimName = rules.required[index]
                if claimName == "iss" && issuer != nil {
                    return .wrongIssuer("the token has no 'iss' claim (expected '\(rules.issuer ?? "")')")
                }
                return .malformed("the token has no '\(claimName)' claim, which 'require' lists")
            }
        }
        let leeway = rules.leewaySeconds
        if let claim = document.member(Self.iatName, in: payload) {
            guard let issued = Self.pythonInteger(at: claim, document, payload) else {
                return .malformed("'iat' is not an integer")
            }
            if issued > nowSeconds + leeway {
                return .notYetValid("'iat' is \(HS256Token.seconds(issued - nowSeconds)) in the future")
            }
        }
        if let claim = document.member(Self.nbfName, in: payload) {
            guard let notBefore = Self.pythonInteger(at: claim, document, payload) else {
                return .malformed("'nbf' is not an integer")
            }
            if notBefore > nowSeconds + leeway {
                return .notYetValid("'nbf' is \(HS256Token.seconds(notBefore - nowSeconds)) in the future")
            }
        }
        if let claim = document.member(Self.expName, in: payload) {
            guard let expires = Self.pythonInteger(at: claim, document, payload) else {
                return .malformed("'exp' is not an integer")
            }
            if expires <= nowSeconds - leeway {
                return .expired("expired \(HS256Token.seconds(nowSeconds - expires)) ago")
            }
        }
        if let issuer, let expected = rules.issuer {
            guard let iss = document.member(Self.issName, in: payload) else {
                return .wrongIssuer("the token has no 'iss' claim (expected '\(expected)')")
            }
            var decoded: [UInt8] = []
            if let range = document.rawString(at: iss) {
                decoded = Array(payload[range])
            } else if !document.decodeString(at: iss, in: payload, into: &decoded) {
                return .wrongIssuer("'iss' is not a string (expected '\(expected)')")
            }
            guard decoded == issuer else {
                let shown = String(decoding: decoded.prefix(64), as: UTF8.self)
                return .wrongIssuer("issuer '\(shown)' is not '\(expected)'")
            }
        }
        if let problem = checkAudience(payload, &document) { return problem }
        for (claimName, key) in [("sub", Self.subName), ("jti", Self.jtiName)] {
            if let claim = document.member(key, in: payload), document.kind(at: claim) != .string {
                return .malformed("'\(claimName)' is not a string")
            }
        }
        return .valid
    }

    /// PyJWT's audience rule: with no audience expected, a token naming one (a truthy `aud`) is refused; with
    /// one, `aud` must be it or a list of strings holding it.
    private func checkAudience(_ payload: UnsafeRawBufferPointer, _ document: inout JSONDocument) -> TokenCheck? {
        let claim = document.member(Self.audName, in: payload)
        let present = claim.map { !Self.isFalsy(at: $0, document, payload) } ?? false
        guard let audience, let expected = rules.audience else {
            return present ? .wrongAudience("the token names an audience ('aud') and none is expected") : nil
        }
        guard let claim, present else { return .wrongAudience("the token has no 'aud' claim (expected '\(expected)')") }
        var name: [UInt8] = []
        if document.decodeString(at: claim, in: payload, into: &name) {
            guard name == audience else {
                let shown = String(decoding: name.prefix(64), as: UTF8.self)
                return .wrongAudience("audience '\(shown)' is not '\(expected)'")
            }
            return nil
        }
        guard let elements = document.elements(at: claim), document.kind(at: claim) == .array else {
            return .wrongAudience("'aud' is neither a string nor a list of strings")
        }
        var found = false
        for element in elements {
            name.removeAll(keepingCapacity: true)
            guard document.decodeString(at: element, in: payload, into: &name) else {
                return .wrongAudience("'aud' lists a value that is not a string")
            }
            if name == audience { found = true }
        }
        return found ? nil : .wrongAudience("'aud' does not list '\(expected)'")
    }

    /// Whether the value is one Python treats as false: null, false, 0, "", [] or {}.
    static func isFalsy(at index: Int, _ document: JSONDocument, _ bytes: UnsafeRawBufferPointer) -> Bool {
        switch document.kind(at: index) {
        case .null, .false: return true
        case .integer, .float: return document.number(at: index, in: bytes) == 0
        case .string: return document.rawString(at: index)?.isEmpty == true
        case .array, .object: return document.elements(at: index)?.isEmpty == true
        case .true, nil: return false
        }
    }

    /// The claim's value as Python's `int(value)` makes it (PyJWT reads `exp`, `nbf` and `iat` so): a number
    /// truncated toward zero, `true`/`false` as 1/0, a string of decimal digits (with surrounding whitespace, a
    /// sign and single underscores between digits); nil where `int` raises (null, a list, an object, other text,
    /// an infinite float). Non-ASCII digits and spaces, which `int` also reads, are refused.
    static func pythonInteger(at index: Int, _ document: JSONDocument, _ bytes: UnsafeRawBufferPointer) -> Double? {
        switch document.kind(at: index) {
        case .integer:
            // An integer literal too long for a Double is still a Python int: only its sign matters against a time.
            guard let value = document.number(at: index, in: bytes) else { return nil }
            return value.isFinite ? value : (value < 0 ? -Double.greatestFiniteMagnitude : .greatestFiniteMagnitude)
        case .float:
            guard let value = document.number(at: index, in: bytes), value.isFinite else { return nil }
            return value.rounded(.towardZero)
        case .true: return 1
        case .false: return 0
        case .string:
            var text: [UInt8] = []
            guard document.decodeString(at: index, in: bytes, into: &text) else { return nil }
            return parsePythonIntText(text)
        default: return nil
        }
    }

    /// `int(text)` for a str: optional whitespace, an optional sign, digits with single `_` between them.
    static func parsePythonIntText(_ text: [UInt8]) -> Double? {
        func isSpace(_ byte: UInt8) -> Bool {
            byte == 0x20 || (0x09...0x0D).contains(byte) || (0x1C...0x1F).contains(byte)
        }
        var start = 0
        var end = text.count
        while start < end && isSpace(text[start]) { start += 1 }
        while end > start && isSpace(text[end - 1]) { end -= 1 }
        var negative = false
        if start < end && (text[start] == 0x2B || text[start] == 0x2D) {
            negative = text[start] == 0x2D
            start += 1
        }
        guard start < end else { return nil }
        var value = 0.0
        var previousWasDigit = false
        for index in start..<end {
            let byte = text[index]
            if (0x30...0x39).contains(byte) {
                value = value * 10 + Double(byte - 0x30)
                previousWasDigit = true
            } else if byte == 0x5F && previousWasDigit && index + 1 < end {
                previousWasDigit = false
            } else {
                return nil
            }
        }
        guard previousWasDigit else { return nil }
        return negative ? -value : value
    }

    /// `12s`, `1.5s`, `0.2s`: seconds for a detail, to a tenth below ten.
    static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "a very long time" }
        if value >= 10 { return "\(Int(value.rounded()))s" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }

    /// Storage a caller reuses across ``check(_:nowSeconds:scratch:)`` calls (one per batch in a filter).
    ///
    /// Not `Sendable`: each thread (each batch) uses its own.
    public struct Scratch {
        var decoded: [UInt8] = []
        var payload: [UInt8] = []
        var document = JSONDocument()
        var keyed: HMAC<SHA256>?

        /// Makes empty storage.
        public init() {}
    }
}

/// Base64 with the URL alphabet and no padding (RFC 4648 section 5), as JWTs use it.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// The unpadded encoding of `bytes`.
    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int(chunk >> UInt32(shift) & 0x3F)]) }
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            var chunk = UInt32(bytes[index]) << 16
            if rest == 2 { chunk |= UInt32(bytes[index + 1]) << 8 }
            output.append(alphabet[Int(chunk >> 18 & 0x3F)])
            output.append(alphabet[Int(chunk >> 12 & 0x3F)])
            if rest == 2 { output.append(alphabet[Int(chunk >> 6 & 0x3F)]) }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends the decoding of unpadded base64url `text` to `output`; false for a byte outside the alphabet
    /// (padding included) or a length that no encoding has.
    static func decode(_ text: UnsafeRawBufferPointer, into output: inout [UInt8]) -> Bool {
        guard text.count % 4 != 1 else { return false }
        output.reserveCapacity(output.count + text.count * 3 / 4)
        var chunk: UInt32 = 0
        var filled = 0
        let valid = values.withUnsafeBufferPointer { table in
            for byte in text {
                let value = table[Int(byte)]
                guard value != 0xFF else { return false }
                chunk = chunk << 6 | UInt32(value)
                filled += 1
                if filled == 4 {
                    output.append(UInt8(chunk >> 16 & 0xFF))
                    output.append(UInt8(chunk >> 8 & 0xFF))
                    output.append(UInt8(chunk & 0xFF))
                    chunk = 0
                    filled = 0
                }
            }
            return true
        }
        guard valid else { return false }
        if filled == 3 {
            output.append(UInt8(chunk >> 10 & 0xFF))
            output.append(UInt8(chunk >> 2 & 0xFF))
        } else if filled == 2 {
            output.append(UInt8(chunk >> 4 & 0xFF))
        }
        return true
    }
}
