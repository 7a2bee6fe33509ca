import RepriseProjection
import Synchronization

/// Process-wide numbers for field paths, so a projection compiled on its own and a decoder built
/// for a group of projections agree on a path without hashing it per event.
enum FieldPathIDs {
    private static let ids = Mutex<[[PathSegment]: Int]>([:])

    static func id(_ path: [PathSegment]) -> Int {
        ids.withLock { ids in
            if let id = ids[path] { return id }
            let id = ids.count
            ids[path] = id
            return id
        }
    }
}

/// One decoded field of a payload (or metadata) document, as `JSONFieldDecoder` fills its slots.
enum DecodedField: Sendable {
    /// Not in the document.
    case missing
    /// A string, bool, null or a plain integer (written exactly as `String(Int64)` writes it).
    case scalar(ProjectionValue)
    /// An array or object kept whole, or a number kept as its JSON text.
    case tree(JSONValue)
    /// An object on the way to kept fields: its members are the child slots.
    case object
    /// An array only `for_each` reads, its elements decoded into item slots.
    case items(DecodedItems)

    /// The value as an expression reads it (what `JSONValue.projectionValue` gives for it).
    var projectionValue: ProjectionValue {
        switch self {
        case .missing: .null
        case .scalar(let value): value
        case .tree(let json): json.projectionValue
        case .object: .null  // never a kept field itself: kept fields are whole values
        case .items(let items): items.tree.projectionValue
        }
    }

    /// The value as JSON (nil: missing); `.object` is rebuilt by the caller.
    var json: JSONValue? {
        switch self {
        case .missing, .object: nil
        case .tree(let json): json
        case .items(let items): items.tree
        case .scalar(let value):
            switch value {
            case .null: .null
            case .bool(let flag): .bool(flag)
            case .int(let number): .number(String(number))
            case .string(let text): .string(text)
            case .decimal, .double: .number(value.description)  // never stored as a scalar
            }
        }
    }
}

/// The slots of a decoder: one per node of its path trie (node 0 is the document). A node is
/// either kept whole (the end of a path) or an object whose named members lead to kept nodes.
final class FieldSlotLayout: @unchecked Sendable {
    // @unchecked: `directSlots` and `slotKinds` are written in init only and freed in deinit.
    final class Node: Sendable {
        /// Kept whole: the end of a path.
        let keepAll: Bool
        /// Child member names with their nodes (a handful: a linear scan beats hashing).
        let names: [[UInt8]]
        /// Each name's length and first byte, checked before its bytes.
        let lengths: [Int]
        let firstBytes: [UInt8]
        let nameStrings: [String]
        /// Whether every name is ASCII (bytes compare exactly as Swift compares the strings).
        let namesAreASCII: Bool
        let children: [Int]
        /// This node and every node below it: `first..<end`.
        let end: Int
        /// For an array only `for_each` reads (kept whole otherwise): the slots of one element.
        let items: FieldSlotLayout?
        /// The names by a hash of their length and first and last bytes (nil: two names share them).
        let table: MemberTable?
        /// The names one after the other, each with 8 zero bytes before it and after the last, so
        /// a name compares 8 bytes at a time without reading outside this buffer.
        let paddedNames: [UInt8]
        /// Where each name starts in `paddedNames`.
        let paddedStarts: [Int]

        init(keepAll: Bool, names: [[UInt8]], nameStrings: [String], namesAreASCII: Bool, children: [Int], end: Int,
             items: FieldSlotLayout? = nil) {
            self.keepAll = keepAll
            self.items = items
            self.names = names
            lengths = names.map(\.count)
            firstBytes = names.map { $0.first ?? 0 }
            self.nameStrings = nameStrings
            self.namesAreASCII = namesAreASCII
            self.children = children
            self.end = end
            table = MemberTable(names)
            var padded = [UInt8](repeating: 0, count: 8)
            var starts: [Int] = []
            for name in names {
                starts.append(padded.count)
                padded += name
                padded += [UInt8](repeating: 0, count: 8)
            }
            paddedNames = padded
            paddedStarts = starts
        }
    }

    /// Member names to their position among a node's names, by a hash of length, first and last
    /// byte that no two of the names share: a member name finds its only candidate with one
    /// lookup, then one comparison of bytes (the names of a payload differ in length or ends).
    struct MemberTable: Sendable {
        let mask: Int
        let multiplier: Int
        /// Per hash value: the position of the name with that hash, or -1.
        let positions: [Int]

        /// Nil for no names, and when no table of up to 256 entries separates them.
        init?(_ names: [[UInt8]]) {
            guard !names.isEmpty else { return nil }
            var size = 8
            while size < names.count * 2 { size *= 2 }
            while size <= 256 {
                for multiplier in [31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101] {
                    var positions = [Int](repeating: -1, count: size)
                    var separated = true
                    for (position, name) in names.enumerated() {
                        let slot = Self.hash(length: name.count, first: name.first ?? 0, last: name.last ?? 0, multiplier: multiplier) & (size - 1)
                        if positions[slot] >= 0 { separated = false; break }
                        positions[slot] = position
                    }
                    if separated {
                        mask = size - 1
                        self.multiplier = multiplier
                        self.positions = positions
                        return
                    }
                }
                size *= 2
            }
            return nil
        }

        static func hash(length: Int, first: UInt8, last: UInt8, multiplier: Int) -> Int {
            ((length &* multiplier) &+ Int(first)) &* multiplier &+ Int(last)
        }

        /// The position of the only name that can be `length` bytes from `first` to `last`, if any.
        func candidate(length: Int, first: UInt8, last: UInt8) -> Int? {
            let position = positions[Self.hash(length: length, first: first, last: last, multiplier: multiplier) & mask]
            return position >= 0 ? position : nil
        }
    }

    /// How a path reads from the slots: its node, and what remains below it when the path runs
    /// past the end of another, shorter one (`items` kept whole and `items.sku` read from it).
    struct Access: Sendable {
        let slot: Int
        let rest: [PathSegment]
    }

    let nodes: [Node]
    /// By `FieldPathIDs` number; nil for paths this decoder does not keep.
    let access: [Access?]
    /// By `FieldPathIDs` number, what a read needs without touching `access` (whose element
    /// holds an array: reading it retains): the slot of a path read whole, `noSlot` for a
    /// path this decoder does not keep, `readBelow` for one read below a kept node (`access`).
    let directSlots: UnsafeMutableBufferPointer<Int32>
    static let noSlot: Int32 = -1, readBelow: Int32 = -2
    /// Per slot, what the parser needs of a node that is not an object on the way to kept fields,
    /// without retaining the node.
    let slotKinds: UnsafeMutableBufferPointer<SlotKind>

    struct SlotKind {
        /// The end of a path (kept whole).
        let keepAll: Bool
        /// An array only `for_each` reads (its elements get item slots).
        let hasItems: Bool
        /// More than this one slot: slots below must be cleared when the member repeats.
        let hasSlotsBelow: Bool
    }

    deinit {
        directSlots.deallocate()
        slotKinds.deallocate()
    }

    /// Nil when the paths cannot all be served from slots: a path of the whole document, an
    /// array index, or a member name that reads as a number (their meaning on arrays differs).
    /// `forEachItems`: arrays only `for_each` reads (no expression reads them as values), with
    /// the paths read on their elements; their elements get slots of their own when those paths
    /// can (else the array is kept whole, as without them).
    convenience init?(paths: [[PathSegment]], forEachItems: [[PathSegment]: [[PathSegment]]] = [:]) {
        guard !paths.isEmpty else { return nil }
        self.init(validPaths: paths, forEachItems: forEachItems)
    }

    /// The slots of one `for_each` element; nil when the paths cannot be slots. No paths is fine:
    /// the elements are only counted.
    static func items(paths: [[PathSegment]]) -> FieldSlotLayout? {
        FieldSlotLayout(validPaths: paths, forEachItems: [:])
    }

    private init?(validPaths paths: [[PathSegment]], forEachItems: [[PathSegment]: [[PathSegment]]]) {
        for path in paths {
            guard !path.isEmpty else { return nil }
            for segment in path {
                guard case .key(let name) = segment, Int(name) == nil else { return nil }
            }
        }
        // The trie, as JSONFieldDecoder.PathNode builds it: the end of a path keeps all below it.
        final class Building {
            var children: [(String, Building)] = []
            var keepAll = false
        }
        let root = Building()
        for path in paths {
            var node = root
            for segment in path {
                if node.keepAll { break }
                let name = segment.description
                if let child = node.children.first(where: { $0.0 == name })?.1 {
                    node = child
                } else {
                    let child = Building()
                    node.children.append((name, child))
                    node = child
                }
            }
            node.keepAll = true
            node.children = []
        }
        // Flattened depth first, so a node's subtree is one range of slots.
        var nodes: [Node?] = []
        func flatten(_ node: Building, path: [String]) -> Int {
            let slot = nodes.count
            nodes.append(nil)
            let children = node.children.map { flatten($0.1, path: path + [$0.0]) }
            let names = node.children.map(\.0)
            // An array's elements get item slots only when no other path reads below it.
            let items = node.keepAll ? itemLayouts[path].flatMap { $0 } : nil
            nodes[slot] = Node(
                keepAll: node.keepAll, names: names.map { Array($0.utf8) }, nameStrings: names,
                namesAreASCII: names.allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }, children: children, end: nodes.count, items: items)
            return slot
        }
        var itemLayouts: [[String]: FieldSlotLayout?] = [:]
        for (array, itemPaths) in forEachItems where paths.contains(array) {
            let extended = paths.contains { $0.count > array.count && Array($0.prefix(array.count)) == array }
            if !extended { itemLayouts[array.map(\.description)] = Self.items(paths: itemPaths) }
        }
        _ = flatten(root, path: [])
        let flat = nodes.map { $0! }
        self.nodes = flat
        var access: [Access?] = []
        for path in paths {
            var slot = 0
            var depth = 0
            while depth < path.count, !flat[slot].keepAll {
                let name = path[depth].description
                guard let position = flat[slot].nameStrings.firstIndex(of: name) else { break }
                slot = flat[slot].children[position]
                depth += 1
            }
            let id = FieldPathIDs.id(path)
            if access.count <= id { access += Array(repeating: nil, count: id + 1 - access.count) }
            access[id] = Access(slot: slot, rest: Array(path[depth...]))
        }
        self.access = access
        directSlots = .allocate(capacity: access.count)
        for (id, entry) in access.enumerated() {
            directSlots[id] = entry.map { $0.rest.isEmpty ? Int32($0.slot) : Self.readBelow } ?? Self.noSlot
        }
        slotKinds = .allocate(capacity: flat.count)
        for (slot, node) in flat.enumerated() {
            slotKinds[slot] = SlotKind(keepAll: node.keepAll, hasItems: node.items != nil, hasSlotsBelow: node.end - slot > 1)
        }
    }
}

/// What a buffer of slots keeps before them: the layout, and `layout.directSlots` again so a read
/// needs no access to the layout (no retain per read).
struct SlotHeader {
    let layout: FieldSlotLayout
    let directSlots: UnsafeBufferPointer<Int32>
    /// Slots per element (`layout.nodes.count`).
    let stride: Int
    /// Elements the buffer has room for, and elements whose slots are initialized.
    let capacity: Int
    var count: Int

    init(_ layout: FieldSlotLayout, capacity: Int) {
        self.layout = layout
        directSlots = UnsafeBufferPointer(layout.directSlots)
        stride = layout.nodes.count
        self.capacity = capacity
        count = 0
    }
}

/// The slots of one document, or of the elements of one `for_each` array (a run of
/// `stride` slots each), in one allocation with its header. Written only while the parser fills
/// it; `DecodedFields` and `DecodedItems` hand it out read-only.
final class SlotBuffer: ManagedBuffer<SlotHeader, DecodedField> {
    /// Room for `capacity` elements, none initialized.
    static func make(_ layout: FieldSlotLayout, capacity: Int) -> SlotBuffer {
        unsafeDowncast(create(minimumCapacity: capacity * layout.nodes.count) { _ in SlotHeader(layout, capacity: capacity) },
                       to: SlotBuffer.self)
    }

    deinit {
        _ = withUnsafeMutablePointers { header, slots in slots.deinitialize(count: header.pointee.count * header.pointee.stride) }
    }

    /// Adds an element whose slots are `.missing` and returns them; `self` must have room
    /// (`withRoom`).
    func appendElement() -> UnsafeMutablePointer<DecodedField> {
        withUnsafeMutablePointers { header, slots in
            let element = slots + header.pointee.count * header.pointee.stride
            element.initialize(repeating: .missing, count: header.pointee.stride)
            header.pointee.count += 1
            return element
        }
    }

    /// `self`, or a buffer with twice the room when it is full (the elements move to it).
    func withRoom() -> SlotBuffer {
        let (count, capacity) = withUnsafeMutablePointers { header, _ in (header.pointee.count, header.pointee.capacity) }
        guard count == capacity else { return self }
        let bigger = Self.make(header.layout, capacity: capacity * 2)
        withUnsafeMutablePointers { header, slots in
            bigger.withUnsafeMutablePointers { biggerHeader, biggerSlots in
                biggerSlots.moveInitialize(from: slots, count: header.pointee.count * header.pointee.stride)
                biggerHeader.pointee.count = header.pointee.count
            }
            header.pointee.count = 0
        }
        return bigger
    }
}

/// A document decoded into slots (`FieldSlotLayout`): the fields handlers read, no tree. The
/// slots live in one buffer (one allocation per document).
struct DecodedFields: @unchecked Sendable {
    // @unchecked: the buffer is written only while `JSONFieldDecoder.decodeFields` fills it.
    let buffer: SlotBuffer

    var layout: FieldSlotLayout { buffer.header.layout }

    /// The value of the path numbered `id`; nil when this decoder does not keep that path.
    func value(_ id: Int) -> ProjectionValue? {
        buffer.withUnsafeMutablePointers { header, slots in SlotReader.value(header, UnsafePointer(slots), id) }
    }

    /// The JSON at the path numbered `id` (a `for_each` array); `.some(nil)` when missing,
    /// nil when this decoder does not keep that path.
    func json(_ id: Int) -> JSONValue?? {
        buffer.withUnsafeMutablePointers { header, slots in SlotReader.json(header.pointee.layout, UnsafePointer(slots), id) }
    }

    /// The elements `for_each` walks at the path numbered `id`; nil when this decoder does not keep that path.
    func elements(_ id: Int) -> ForEachElements? {
        buffer.withUnsafeMutablePointers { header, slots in SlotReader.elements(header.pointee.layout, UnsafePointer(slots), id) }
    }

    /// The document as `JSONFieldDecoder.decode` would have returned it (the kept members only).
    var tree: JSONValue {
        buffer.withUnsafeMutablePointers { header, slots in SlotReader.tree(header.pointee.layout, UnsafePointer(slots), 0) ?? .null }
    }
}

/// The elements of an array only `for_each` reads: one run of `layout.nodes.count` slots per
/// element, in one buffer (one allocation while the array holds up to 4 elements).
struct DecodedItems: @unchecked Sendable {
    // @unchecked: the buffer is written only while the parser fills it.
    let buffer: SlotBuffer

    var layout: FieldSlotLayout { buffer.header.layout }
    var count: Int { buffer.withUnsafeMutablePointerToHeader { $0.pointee.count } }

    /// The value of item path `id` on element `index`; nil when the item slots do not keep that path.
    func value(_ index: Int, _ id: Int) -> ProjectionValue? {
        buffer.withUnsafeMutablePointers { header, slots in
            SlotReader.value(header, UnsafePointer(slots + index * header.pointee.stride), id)
        }
    }

    func elements(_ index: Int, _ id: Int) -> ForEachElements? {
        buffer.withUnsafeMutablePointers { header, slots in
            SlotReader.elements(header.pointee.layout, UnsafePointer(slots + index * header.pointee.stride), id)
        }
    }

    /// Element `index` as the tree decoder would have kept it (the members read only).
    func tree(_ index: Int) -> JSONValue {
        buffer.withUnsafeMutablePointers { header, slots in
            SlotReader.tree(header.pointee.layout, UnsafePointer(slots + index * header.pointee.stride), 0) ?? .null
        }
    }

    /// The array (its elements with the members read only).
    var tree: JSONValue { .array((0..<count).map(tree)) }
}

/// What `for_each` walks: nothing (missing or null, like an empty array), a value that is not an
/// array, or its elements as trees or as item slots.
enum ForEachElements {
    case none
    case notArray
    case trees([JSONValue])
    case slots(DecodedItems)

    init(_ json: JSONValue?) {
        switch json {
        case .array(let elements)?: self = .trees(elements)
        case nil, .null?: self = .none
        default: self = .notArray
        }
    }
}

/// Reads the slots of one document (or one `for_each` element) at `slots`; callers keep the
/// buffer alive around the call.
enum SlotReader {
    /// The hot read: one table entry and the slot, nothing retained but the value.
    @inline(__always)
    static func value(_ header: UnsafeMutablePointer<SlotHeader>, _ slots: UnsafePointer<DecodedField>, _ id: Int) -> ProjectionValue? {
        let direct = header.pointee.directSlots
        guard id < direct.count else { return nil }
        let slot = direct[id]
        if slot >= 0 {
            // Matched in place: only the value is copied, not the whole slot.
            let field = slots + Int(slot)
            if case .scalar(let value) = field.pointee { return value }
            return field.pointee.projectionValue
        }
        if slot == FieldSlotLayout.noSlot { return nil }
        return below(header.pointee.layout, slots, id)
    }

    /// A path read below a kept node (the rest of the path in that node's tree).
    static func below(_ layout: FieldSlotLayout, _ slots: UnsafePointer<DecodedField>, _ id: Int) -> ProjectionValue? {
        guard id < layout.access.count, let access = layout.access[id] else { return nil }
        let field = slots[access.slot]
        guard !access.rest.isEmpty else { return field.projectionValue }
        guard case .tree(let json) = field else { return .null }
        return json.value(at: access.rest[...])?.projectionValue ?? .null
    }

    static func json(_ layout: FieldSlotLayout, _ slots: UnsafePointer<DecodedField>, _ id: Int) -> JSONValue?? {
        guard id < layout.access.count, let access = layout.access[id] else { return nil }
        let field = slots[access.slot]
        let json: JSONValue? = if case .object = field { tree(layout, slots, access.slot) } else { field.json }
        guard !access.rest.isEmpty else { return .some(json) }
        return .some(json?.value(at: access.rest[...]))
    }

    static func elements(_ layout: FieldSlotLayout, _ slots: UnsafePointer<DecodedField>, _ id: Int) -> ForEachElements? {
        guard id < layout.access.count, let access = layout.access[id] else { return nil }
        if access.rest.isEmpty, case .items(let items) = slots[access.slot] { return .slots(items) }
        return json(layout, slots, id).map(ForEachElements.init)
    }

    static func tree(_ layout: FieldSlotLayout, _ slots: UnsafePointer<DecodedField>, _ slot: Int) -> JSONValue? {
        let field = slots[slot]
        guard case .object = field else { return field.json }
        let node = layout.nodes[slot]
        var members: [String: JSONValue] = [:]
        for (name, child) in zip(node.nameStrings, node.children) {
            if let value = tree(layout, slots, child) { members[name] = value }
        }
        return .object(members)
    }
}

extension JSONFieldDecoder.Parser {
    /// Parses the value at `slot` of `layout` into `values` (the slots of one document or
    /// element, whose slots below `slot` are `.missing`).
    mutating func parseSlots(_ slot: Int, _ layout: FieldSlotLayout, into values: UnsafeMutablePointer<DecodedField>) throws(JSONDecodingError) {
        guard offset < bytes.count else { throw error("unexpected end of JSON") }
        let kind = layout.slotKinds[slot]
        let byte = bytes[offset]
        if kind.hasItems, byte == UInt8(ascii: "["), let items = layout.nodes[slot].items {
            values[slot] = try parseItems(items)
            return
        }
        if kind.keepAll || byte != UInt8(ascii: "{") {
            values[slot] = try parseLeaf(wholeArrays: kind.keepAll)
            return
        }
        try parseMembers(layout.nodes[slot], layout, into: values, at: slot)
    }

    /// The members of an object on the way to kept fields (at its `{`).
    private mutating func parseMembers(_ node: FieldSlotLayout.Node, _ layout: FieldSlotLayout, into values: UnsafeMutablePointer<DecodedField>,
                                       at slot: Int) throws(JSONDecodingError) {
        values[slot] = .object
        offset += 1
        skipWhitespace()
        if offset < bytes.count && bytes[offset] == UInt8(ascii: "}") {
            offset += 1
            return
        }
        while true {
            skipWhitespace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let child = try memberChild(node)
            skipWhitespace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw error("expected ':'") }
            offset += 1
            skipWhitespace()
            if let child {
                // A repeated member replaces the earlier one whole, as in a decoded object (a
                // slot alone is overwritten by the parse).
                if layout.slotKinds[child].hasSlotsBelow {
                    for below in child..<layout.nodes[child].end { values[below] = .missing }
                }
                try parseSlots(child, layout, into: values)
            } else {
                _ = try parseValue(keep: nil)
            }
            skipWhitespace()
            guard offset < bytes.count else { throw error("unterminated object") }
            if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
            if bytes[offset] == UInt8(ascii: "}") { offset += 1; break }
            throw error("expected ',' or '}'")
        }
    }

    /// An array (at its `[`) whose elements are decoded into the slots of `layout`, one run each.
    /// The tree decoder keeps such an array whole, so its errors are those of a whole array:
    /// strings skipped inside the elements are checked as strictly as if they were decoded.
    private mutating func parseItems(_ layout: FieldSlotLayout) throws(JSONDecodingError) -> DecodedField {
        offset += 1
        var items = SlotBuffer.make(layout, capacity: 4)
        skipWhitespace()
        if offset < bytes.count && bytes[offset] == UInt8(ascii: "]") {
            offset += 1
            return .items(DecodedItems(buffer: items))
        }
        let wasStrict = strictSkipping
        strictSkipping = true
        defer { strictSkipping = wasStrict }
        try parseElements { (parser) throws(JSONDecodingError) in
            items = items.withRoom()
            // `items` holds the element's slots while they are written.
            try parser.parseSlots(0, layout, into: items.appendElement())
        }
        return .items(DecodedItems(buffer: items))
    }

    /// Parses the elements of an array whose `[` is read and which is not empty, up to its `]`.
    private mutating func parseElements(_ element: (inout Self) throws(JSONDecodingError) -> Void) throws(JSONDecodingError) {
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            guard offset < bytes.count else { throw error("unterminated array") }
            if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
            if bytes[offset] == UInt8(ascii: "]") { offset += 1; break }
            throw error("expected ',' or ']'")
        }
    }

    /// Reads a member name (at its opening quote) and returns the child node it names, if any.
    /// Names compare as Swift strings compare (canonical equivalence); plain ASCII on both sides
    /// compares byte for byte, which is the same.
    private mutating func memberChild(_ node: FieldSlotLayout.Node) throws(JSONDecodingError) -> Int? {
        let start = offset + 1
        if node.namesAreASCII, let table = node.table {
            // Up to the first byte that is not plain ASCII text: the closing quote for a plain name.
            let end = plainTextEnd(from: start, stopAtNonASCII: true)
            if end < bytes.count, bytes[end] == UInt8(ascii: "\""), end > start {
                offset = end + 1
                let length = end - start
                guard let position = table.candidate(length: length, first: bytes[start], last: bytes[end - 1]),
                      node.lengths[position] == length else { return nil }
                let matches = node.paddedNames.withUnsafeBytes { padded in
                    Self.sameBytes(bytes, start, padded, node.paddedStarts[position], length: length)
                }
                return matches ? node.children[position] : nil
            }
        }
        return try memberChildScanning(node)
    }

    /// Whether `length` bytes of `text` at `start` equal those of `name` at `nameStart`, 8 at a
    /// time. `name` has 8 readable bytes before `nameStart` and after the name; no byte of `text`
    /// outside `0..<start + length` is read.
    @inline(__always)
    static func sameBytes(_ text: UnsafeRawBufferPointer, _ start: Int, _ name: UnsafeRawBufferPointer, _ nameStart: Int,
                          length: Int) -> Bool {
        guard let textBase = text.baseAddress, let nameBase = name.baseAddress else { return length == 0 }
        func word(_ base: UnsafeRawPointer, _ at: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        if length >= 8 {
            var index = 0
            while index + 8 < length {
                if word(textBase, start + index) != word(nameBase, nameStart + index) { return false }
                index += 8
            }
            // The last 8 bytes (overlapping the previous word when the length is not a multiple of 8).
            return word(textBase, start + length - 8) == word(nameBase, nameStart + length - 8)
        }
        let end = start + length
        if end >= 8 {
            // The 8 bytes ending at the name's end, of which the name is the top `length`.
            let shift = UInt64(64 - 8 * length)
            return word(textBase, end - 8) >> shift == word(nameBase, nameStart + length - 8) >> shift
        }
        for index in 0..<length where text[start + index] != name[nameStart + index] { return false }
        return true
    }

    /// `memberChild` for names with escapes or non-ASCII bytes, or nodes without a table.
    private mutating func memberChildScanning(_ node: FieldSlotLayout.Node) throws(JSONDecodingError) -> Int? {
        let start = offset + 1
        var end = start
        var ascii = true
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            if byte >= 0x80 { ascii = false }
            end += 1
        }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\""), ascii, node.namesAreASCII {
            offset = end + 1
            let length = end - start
            let bytes = bytes
            let first = length > 0 ? bytes[start] : 0
            for position in node.names.indices where node.lengths[position] == length && (length == 0 || node.firstBytes[position] == first) {
                let matches = node.names[position].withUnsafeBufferPointer { name in
                    var index = 1
                    while index < length, name[index] == bytes[start + index] { index += 1 }
                    return index >= length
                }
                if matches { return node.children[position] }
            }
            return nil
        }
        let name = try parseString()
        return node.nameStrings.firstIndex(of: name).map { node.children[$0] }
    }

    /// A value that is not an object on the way to kept fields. With `wholeArrays` false (an
    /// object member expected on the path), an array keeps only its length, as the tree decoder
    /// keeps elements not on a kept path as null.
    private mutating func parseLeaf(wholeArrays: Bool) throws(JSONDecodingError) -> DecodedField {
        switch bytes[offset] {
        case UInt8(ascii: "\""):
            return .scalar(.string(try parseString()))
        case UInt8(ascii: "t"): try expectLiteral("true"); return .scalar(.bool(true))
        case UInt8(ascii: "f"): try expectLiteral("false"); return .scalar(.bool(false))
        case UInt8(ascii: "n"): try expectLiteral("null"); return .scalar(.null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = offset
            try skipNumber()
            if let integer = Self.plainInteger(UnsafeRawBufferPointer(rebasing: bytes[start..<offset])) { return .scalar(.int(integer)) }
            return .tree(.number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)))
        case UInt8(ascii: "["):
            if wholeArrays { return .tree(try parseValue(keep: JSONFieldDecoder.keepEverything) ?? .null) }
            offset += 1
            var count = 0
            skipWhitespace()
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "]") {
                offset += 1
                return .tree(.array([]))
            }
            try parseElements { (parser) throws(JSONDecodingError) in
                _ = try parser.parseValue(keep: nil)
                count += 1
            }
            return .tree(.array(Array(repeating: .null, count: count)))
        default:
            return .tree(try parseValue(keep: JSONFieldDecoder.keepEverything) ?? .null)
        }
    }

    /// `-?(0|[1-9][0-9]{0,17})`: an integer whose text is exactly `String(Int64)` of its value
    /// (other numbers keep their text, converted when read, as before).
    static func plainInteger(_ text: UnsafeRawBufferPointer) -> Int64? {
        // "0" alone; "-0" and leading zeros are not written that way by String(Int64).
        let digits = text.first == UInt8(ascii: "-") ? text.dropFirst() : text[...]
        if digits.first == UInt8(ascii: "0"), digits.count > 1 || text.count > 1 { return nil }
        return JSONValue.plainInteger(digits: text)
    }
}
