/// 64-bit FNV-1a: tiny, stable across processes, platforms and releases (unlike `Hasher`, which
/// is seeded per process). For lock keys, partitions and definition hashes that must agree everywhere.
///
/// ```swift
/// FNV1a.hash("reprise.relay.public.outbox")   // the same value in every process
/// ```
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func add(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }

    /// The hash of one string.
    public static func hash(_ text: String) -> UInt64 {
        var hasher = FNV1a()
        hasher.add(text)
        return hasher.value
    }

    /// 16 hexadecimal digits.
    public var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
