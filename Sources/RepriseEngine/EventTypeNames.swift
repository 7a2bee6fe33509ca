/// The event types of one batch, each distinct stored name decoded (and mapped) once: the type
/// column holds a handful of names, so each row compares bytes with the few seen so far and
/// reuses their `String` (no decoding, no allocation for names over 15 bytes, no mapping lookup).
struct EventTypeNames {
    /// Distinct stored names beyond this many are decoded per row (a type column that is not one).
    static let capacity = 32
    /// Each stored name with 8 zero bytes before and after it (compared 8 bytes at a time by
    /// `JSONFieldDecoder.Parser.sameBytes`), and its length.
    private var stored: [[UInt8]] = []
    private var lengths: [Int] = []
    private var types: [String] = []
    private let map: (String) -> String

    /// `map`: the logical type of a stored name.
    init(map: @escaping (String) -> String) { self.map = map }

    /// The logical type of the stored name `bytes`.
    mutating func type(_ bytes: UnsafeRawBufferPointer) -> String {
        for index in lengths.indices where lengths[index] == bytes.count {
            let same = stored[index].withUnsafeBytes { JSONFieldDecoder.Parser.sameBytes(bytes, 0, $0, 8, length: bytes.count) }
            if same { return types[index] }
        }
        let type = map(String(decoding: bytes, as: UTF8.self))
        if stored.count < Self.capacity {
            stored.append([UInt8](repeating: 0, count: 8) + Array(bytes) + [UInt8](repeating: 0, count: 8))
            lengths.append(bytes.count)
            types.append(type)
        }
        return type
    }
}
