/// A small, fast, seedable random number generator (SplitMix64), so a demo history is the
/// same for the same seed on every machine and every Swift version.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// An index in `0..<count` skewed towards small values: a few customers and products are hot.
    public mutating func skewedIndex(_ count: Int) -> Int {
        let u = Double(next() >> 11) / Double(1 << 53)
        return min(count - 1, Int(Double(count) * u * u * u))
    }

    /// A time-ordered UUID (version 7 layout) for a millisecond timestamp: ids made later sort
    /// later, so the store's unique index grows at its right edge, as with real v7 ids.
    public mutating func uuid(milliseconds: UInt64) -> String {
        let random = next()
        let a = (milliseconds >> 16) & 0xFFFF_FFFF
        let b = milliseconds & 0xFFFF
        let c = 0x7000 | (random >> 52)
        let d = 0x8000 | ((random >> 38) & 0x3FFF)
        let e = random & 0xFFFF_FFFF_FFFF
        return hex(a, 8) + "-" + hex(b, 4) + "-" + hex(c, 4) + "-" + hex(d, 4) + "-" + hex(e, 12)
    }

    /// A random version-4 UUID in text form.
    public mutating func uuid() -> String {
        let high = next(), low = next()
        let a = (high >> 32) & 0xFFFF_FFFF
        let b = (high >> 16) & 0xFFFF
        let c = (high & 0x0FFF) | 0x4000
        let d = ((low >> 48) & 0x3FFF) | 0x8000
        let e = low & 0xFFFF_FFFF_FFFF
        return hex(a, 8) + "-" + hex(b, 4) + "-" + hex(c, 4) + "-" + hex(d, 4) + "-" + hex(e, 12)
    }

    private func hex(_ value: UInt64, _ width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
