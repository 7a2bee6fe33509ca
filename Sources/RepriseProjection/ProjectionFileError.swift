/// A problem with a projection file, found while loading it: where (file, field path, and the
/// line when known) and what. Its description is the message an operator sees:
/// `order_summary.yml: handlers.OrderItemAdded[0].update.set.total_cents: unknown column 'totl_cents' in table order_summary`.
public struct ProjectionFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file as it was named to the parser.
    public var file: String
    /// The field path in the document (`tables.orders.columns.total`,
    /// `handlers.OrderCreated[0].upsert.set.status`); `line L, column C` for YAML syntax errors;
    /// empty for problems with the file as a whole.
    public var path: String
    public var message: String
    /// The line in the file (from 1) when the YAML parser reported one.
    public var line: Int?

    public init(file: String, path: String, message: String, line: Int? = nil) {
        self.file = file
        self.path = path
        self.message = message
        self.line = line
    }

    public var description: String {
        path.isEmpty ? "\(file): \(message)" : "\(file): \(path): \(message)"
    }
}
