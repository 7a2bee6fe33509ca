/// Another name for the projection language's `Expression`. Foundation (swift-foundation 6)
/// also declares a type named `Expression`, so a file importing both modules must qualify the
/// name; this alias saves writing `RepriseProjection.Expression`.
public typealias ProjectionExpression = Expression
