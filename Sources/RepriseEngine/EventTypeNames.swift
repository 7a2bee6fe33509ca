/// The event types of one batch, each distinct stored name decoded (and mapped) once: the type
/// column holds a handful of names, so each row compares bytes with the few seen so far and
/// reuses their `String` (no decoding, no allocation for names over 15 bytes, no mapping lookup).
struct EventTypeNames {
    /// Distinct stored names beyond this many are decoded per row (a type column that is not one).
    static let capacity = 32
    private var stored: [[UInt8]] = []
    private var types: [String] = []
    private let map: (String) -> String

    /// `map`: the logical type of a stored name.
    init(map: @escaping (String) -> String) { self.map = map }

    /// The logical type of the stored name `bytes`.
    mutating func type(_ bytes: UnsafeRawBufferPointer) -> String {
        for index in stored.indices where stored[index].count == bytes.count {
            if stored[index].withUnsafeBytes({ $0.elementsEqual(bytes) }) { return types[index] }
        }
        let type = map(String(decoding: bytes, as: UTF8.self))
        if stored.count < Self.capacity {
            stored.append(Array(bytes))
            types.append(type)
        }
        return type
    }
}
