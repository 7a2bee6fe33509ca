extension Duration {
    /// The duration in seconds, as a floating-point number (rates, ratios, metrics).
    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
