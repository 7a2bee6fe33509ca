// What a Swift projection needs comes with `import RepriseCommandLine`: the `Projection`
// protocol, `ProjectionEvent`, `ProjectionRows`, `JSONValue` (RepriseEngine) and
// `ProjectionDefinition`, `TableDefinition`, `ColumnDefinition`, `ProjectionValue` (RepriseProjection).
@_exported import RepriseEngine
@_exported import RepriseProjection
