import CRabbitMQ

/// Owns the C memory a call needs (strings as `amqp_bytes_t`, field tables) and frees it when
/// released. Each call builds one, so nothing outlives the C call that borrowed it.
final class AMQPArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for allocation in allocations { allocation.deallocate() }
    }

    func bytes(_ text: String) -> amqp_bytes_t { bytes(Array(text.utf8)) }

    func bytes(_ data: [UInt8]) -> amqp_bytes_t {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 1)
        allocations.append(memory)
        data.withUnsafeBytes { source in
            if let base = source.baseAddress { memory.copyMemory(from: base, byteCount: data.count) }
        }
        return amqp_bytes_t(len: data.count, bytes: memory)
    }

    func table(_ fields: [String: AMQPFieldValue]) -> amqp_table_t {
        guard !fields.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: fields.count)
        allocations.append(UnsafeMutableRawPointer(entries))
        // Sorted keys: the wire form is deterministic, which makes captures comparable.
        for (index, (key, field)) in fields.sorted(by: { $0.key < $1.key }).enumerated() {
            var value = amqp_field_value_t()
            switch field {
            case .string(let text):
                value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                value.value.bytes = bytes(text)
            case .int(let number):
                value.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
                value.value.i64 = number
            case .bool(let flag):
                value.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
                value.value.boolean = flag ? 1 : 0
            case .double(let number):
                value.kind = UInt8(AMQP_FIELD_KIND_F64.rawValue)
                value.value.f64 = number
            }
            (entries + index).initialize(to: amqp_table_entry_t(key: bytes(key), value: value))
        }
        return amqp_table_t(num_entries: Int32(fields.count), entries: entries)
    }
}

extension amqp_bytes_t {
    /// A Swift copy of the bytes.
    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }

    var string: String { String(decoding: array, as: UTF8.self) }
}

extension amqp_table_t {
    /// The entries Reprise understands; other kinds (arrays, nested tables, decimals) are skipped.
    var fields: [String: AMQPFieldValue] {
        guard num_entries > 0, let entries else { return [:] }
        var result: [String: AMQPFieldValue] = [:]
        for index in 0..<Int(num_entries) {
            let entry = entries[index]
            let key = entry.key.string
            let value = entry.value
            switch UInt32(value.kind) {
            case AMQP_FIELD_KIND_UTF8.rawValue, AMQP_FIELD_KIND_BYTES.rawValue: result[key] = .string(value.value.bytes.string)
            case AMQP_FIELD_KIND_I64.rawValue: result[key] = .int(value.value.i64)
            case AMQP_FIELD_KIND_U64.rawValue, AMQP_FIELD_KIND_TIMESTAMP.rawValue: result[key] = .int(Int64(bitPattern: value.value.u64))
            case AMQP_FIELD_KIND_I32.rawValue: result[key] = .int(Int64(value.value.i32))
            case AMQP_FIELD_KIND_U32.rawValue: result[key] = .int(Int64(value.value.u32))
            case AMQP_FIELD_KIND_I16.rawValue: result[key] = .int(Int64(value.value.i16))
            case AMQP_FIELD_KIND_U16.rawValue: result[key] = .int(Int64(value.value.u16))
            case AMQP_FIELD_KIND_I8.rawValue: result[key] = .int(Int64(value.value.i8))
            case AMQP_FIELD_KIND_U8.rawValue: result[key] = .int(Int64(value.value.u8))
            case AMQP_FIELD_KIND_BOOLEAN.rawValue: result[key] = .bool(value.value.boolean != 0)
            case AMQP_FIELD_KIND_F64.rawValue: result[key] = .double(value.value.f64)
            case AMQP_FIELD_KIND_F32.rawValue: result[key] = .double(Double(value.value.f32))
            default: continue
            }
        }
        return result
    }
}

extension amqp_basic_properties_t {
    var messageProperties: AMQPMessageProperties {
        let flags = _flags
        return AMQPMessageProperties(
            contentType: flags & reprise_amqp_flag_content_type != 0 ? content_type.string : nil,
            messageID: flags & reprise_amqp_flag_message_id != 0 ? message_id.string : nil,
            type: flags & reprise_amqp_flag_type != 0 ? type.string : nil,
            persistent: flags & reprise_amqp_flag_delivery_mode != 0 && delivery_mode == UInt8(AMQP_DELIVERY_PERSISTENT.rawValue),
            timestamp: flags & reprise_amqp_flag_timestamp != 0 ? timestamp : nil,
            headers: flags & reprise_amqp_flag_headers != 0 ? headers.fields : [:])
    }
}
