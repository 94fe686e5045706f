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
        /// Signature, expiry, not-before, issued-at and issuer all hold.
        case valid
        /// Not a JWT, or a claim of the wrong type (`exp` not a number, no `exp`).
        case malformed(String)
        /// The header names another algorithm than HS256 (`none` included), or the signature does not match.
        case badSignature(String)
        /// `exp` plus the leeway is not after now.
        case expired(String)
        /// `nbf` or `iat` minus the leeway is after now.
        case notYetValid(String)
        /// `iss` is absent, not a string, or not the expected issuer.
        case wrongIssuer(String)
    }

    private let key: SymmetricKey
    private let issuer: [UInt8]
    private let issuerText: String
    private let leewaySeconds: Double

    /// Makes a checker for tokens signed with `secret` (its bytes are the HMAC key, as PyJWT uses the UTF-8 of a
    /// string key), issued by `issuer`, with `leewaySeconds` of clock skew allowed on `exp`, `nbf` and `iat`.
    public init(secret: some Collection<UInt8>, issuer: String, leewaySeconds: Double) {
        key = SymmetricKey(data: Array(secret))
        self.issuer = Array(issuer.utf8)
        issuerText = issuer
        self.leewaySeconds = leewaySeconds
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

    /// Checks a compact token (its ASCII text) at `nowSeconds` since the Unix epoch, in this order: the form, the
    /// algorithm, the signature (compared in constant time), `exp` (required), `nbf` and `iat` (when present),
    /// `iss`. `scratch` is reused storage for decoded parts.
    public func check(
        _ token: UnsafeRawBufferPointer, nowSeconds: Double, scratch: inout HS256Token.Scratch
    ) -> TokenCheck {
        // Work on locals so that reading one buffer while the document changes is never an overlapping access.
        var decoded = scratch.decoded
        var document = scratch.document
        // The key's inner and outer pads, hashed once per scratch (per batch) rather than once per token.
        let keyed = scratch.keyed ?? HMAC<SHA256>(key: key)
        scratch = Scratch()
        defer {
            scratch.decoded = decoded
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
        let headerProblem = decoded.withUnsafeBytes { header in Self.checkHeader(header, &document) }
        if let headerProblem { return headerProblem }

        decoded.removeAll(keepingCapacity: true)
        guard Base64URL.decode(UnsafeRawBufferPointer(rebasing: token[(secondDot + 1)...]), into: &decoded) else {
            return .malformed("the signature is not base64url")
        }
        var authenticator = keyed
        authenticator.update(data: signed)
        // MessageAuthenticationCode's == is swift-crypto's constant-time safeCompare, as in
        // HMAC.isValidAuthenticationCode, which would hash the key's pads again for every token.
        guard authenticator.finalize() == decoded else {
            return .badSignature("the signature does not match the secret")
        }

        decoded.removeAll(keepingCapacity: true)
        let payloadPart = UnsafeRawBufferPointer(rebasing: token[(firstDot + 1)..<secondDot])
        guard Base64URL.decode(payloadPart, into: &decoded) else {
            return .malformed("the payload is not base64url")
        }
        return decoded.withUnsafeBytes { payload in checkClaims(payload, nowSeconds: nowSeconds, document: &document) }
    }

    private static let algName = Array("alg".utf8)
    private static let hs256 = Array("HS256".utf8)
    private static let critName = Array("crit".utf8)
    private static let expName = Array("exp".utf8)
    private static let timeClaims = [("nbf", Array("nbf".utf8)), ("iat", Array("iat".utf8))]
    private static let issName = Array("iss".utf8)

    private static func checkHeader(_ header: UnsafeRawBufferPointer, _ document: inout JSONDocument) -> TokenCheck? {
        guard document.parse(header) == nil, document.rootKind == .object else {
            return .malformed("the header is not a JSON object")
        }
        guard let alg = document.member(algName, in: header), document.kind(at: alg) == .string else {
            return .malformed("the header has no 'alg' string")
        }
        var name: [UInt8] = []  // only filled for a refusal or an escaped name
        let isHS256: Bool
        if let range = document.rawString(at: alg) {
            isHS256 = UnsafeRawBufferPointer(rebasing: header[range]).elementsEqual(hs256)
            if !isHS256 { name = Array(header[range]) }
        } else {
            _ = document.decodeString(at: alg, in: header, into: &name)
            isHS256 = name == hs256
        }
        guard isHS256 else {
            let shown = String(decoding: name.prefix(32), as: UTF8.self)
            return .badSignature("algorithm '\(shown)' is refused: only HS256 is accepted")
        }
        if document.member(critName, in: header) != nil {
            return .malformed("critical header parameters ('crit') are not supported")
        }
        return nil
    }

    private func checkClaims(
        _ payload: UnsafeRawBufferPointer, nowSeconds: Double, document: inout JSONDocument
    ) -> TokenCheck {
        guard document.parse(payload) == nil, document.rootKind == .object else {
            return .malformed("the payload is not a JSON object")
        }
        guard let exp = document.member(Self.expName, in: payload) else {
            return .malformed("the token has no 'exp' claim: tokens must expire")
        }
        guard let expires = document.number(at: exp, in: payload) else { return .malformed("'exp' is not a number") }
        if nowSeconds >= expires + leewaySeconds {
            return .expired("expired \(HS256Token.seconds(nowSeconds - expires)) ago")
        }
        for (name, key) in Self.timeClaims {
            guard let claim = document.member(key, in: payload) else { continue }
            guard let value = document.number(at: claim, in: payload) else {
                return .malformed("'\(name)' is not a number")
            }
            if value - leewaySeconds > nowSeconds {
                return .notYetValid("'\(name)' is \(HS256Token.seconds(value - nowSeconds)) in the future")
            }
        }
        guard let iss = document.member(Self.issName, in: payload) else {
            return .wrongIssuer("the token has no 'iss' claim (expected '\(issuerText)')")
        }
        if let range = document.rawString(at: iss) {
            if UnsafeRawBufferPointer(rebasing: payload[range]).elementsEqual(issuer) { return .valid }
        }
        var decoded: [UInt8] = []
        guard document.decodeString(at: iss, in: payload, into: &decoded) else {
            return .wrongIssuer("'iss' is not a string (expected '\(issuerText)')")
        }
        guard decoded == issuer else {
            let shown = String(decoding: decoded.prefix(64), as: UTF8.self)
            return .wrongIssuer("issuer '\(shown)' is not '\(issuerText)'")
        }
        return .valid
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
