internal import Crypto

#if canImport(FoundationEssentials)
    internal import FoundationEssentials
#else
    internal import Foundation
#endif

/// The data-diode seed's message, `{"client_id": ..., "text": ..., "token": ..., "checksum": ...}`: how it is made
/// (for `routerd send --format diode`) and how its checksum is computed (shared with the `verify` filter).
///
/// `client_id` is an integer (the seed's table has `client_id INT`); `token` is an HS256 JWT whose claims are the
/// seed client's `{"iss": "udp_client", "iat": now, "exp": now + 30}`; `checksum` is the MD5 hex digest of
/// `json.dumps(message_without_checksum, sort_keys=True)` as Python writes it. The bytes are the seed client's.
public enum DiodeMessage {
    /// A way to spoil a message, to see a verifier refuse it.
    public enum Tamper: String, CaseIterable, Sendable {
        /// The token is signed with another secret (`bad_signature`).
        case signature
        /// The checksum is not the message's (`bad_checksum`).
        case checksum
        /// The token expired a minute ago (`expired`).
        case expired
        /// The token names another issuer (`wrong_issuer` where `verify` has an `issuer`; the seed checks none).
        case issuer
    }

    /// The MD5 hex digest (lowercase) of `json.dumps(message, sort_keys=True)` after removing the top-level
    /// `omitting` key, as the seed computes the checksum. Throws when `message` is not JSON as Python reads it;
    /// a message that is JSON but not an object is hashed whole.
    public static func checksum(
        of message: some Collection<UInt8>, omitting field: String = "checksum"
    ) throws(JSONSyntaxError) -> String {
        let bytes = Array(message)
        var document = JSONDocument()
        var dumped: [UInt8] = []
        let failure = bytes.withUnsafeBytes { raw -> JSONSyntaxError? in
            if let error = document.parse(raw) { return error }
            document.appendPythonDumps(of: raw, omittingTopLevelKey: Array(field.utf8), to: &dumped)
            return nil
        }
        if let failure { throw failure }
        return String(decoding: md5Hex(dumped), as: UTF8.self)
    }

    /// A signed seed message as one JSON line (Python's `json.dumps(message)` layout, PyJWT's token), made at
    /// `issuedAt` (seconds since the Unix epoch), optionally spoiled by `tamper`.
    public static func make(
        clientID: Int, text: String, secret: some Collection<UInt8>, issuer: String = "udp_client",
        issuedAt: Int64, lifetimeSeconds: Int64 = 30, tamper: Tamper? = nil
    ) -> [UInt8] {
        var issuedAt = issuedAt
        if tamper == .expired { issuedAt -= 60 + lifetimeSeconds }
        // PyJWT writes the claims in the order given, with no spaces.
        let claims =
            "{\"iss\":" + PythonJSON.quoted(tamper == .issuer ? issuer + "_other" : issuer) + ",\"iat\":\(issuedAt),"
            + "\"exp\":\(issuedAt + lifetimeSeconds)}"
        var key = Array(secret)
        if tamper == .signature { key += Array("-wrong".utf8) }
        let token = HS256Token.sign(claims: Array(claims.utf8), secret: key)
        let body =
            "{\"client_id\": \(clientID), \"text\": " + PythonJSON.quoted(text)
            + ", \"token\": " + PythonJSON.quoted(token)
        var digest = (try? checksum(of: Array((body + "}").utf8))) ?? String(repeating: "0", count: 32)
        if tamper == .checksum { digest = (digest.hasPrefix("0") ? "1" : "0") + digest.dropFirst() }
        return Array((body + ", \"checksum\": \"" + digest + "\"}").utf8)
    }

    /// The lowercase hex MD5 digest of `bytes` (32 ASCII bytes).
    static func md5Hex(_ bytes: some DataProtocol) -> [UInt8] {
        let digest = Insecure.MD5.hash(data: bytes)
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        for byte in digest {
            hex.append(hexDigit(byte >> 4))
            hex.append(hexDigit(byte & 0xF))
        }
        return hex
    }

    /// Whether `candidate` is exactly the lowercase hex MD5 digest of `bytes` (the seed compares strings).
    static func md5Matches(_ bytes: UnsafeRawBufferPointer, hex candidate: UnsafeRawBufferPointer) -> Bool {
        guard candidate.count == 32 else { return false }
        let digest = Insecure.MD5.hash(data: bytes)
        var index = 0
        var same = true
        for byte in digest {
            same = same && candidate[index] == hexDigit(byte >> 4) && candidate[index + 1] == hexDigit(byte & 0xF)
            index += 2
        }
        return same
    }

    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? 0x30 + nibble : 0x57 + nibble
    }
}
