import RepriseCommandLine

/// The `reprise` command line, with `customer_stats_swift` registered beside the projection files:
/// `ShopReprise rebuild customer_stats_swift`, `ShopReprise live customer_stats_swift …`, and
/// every other command, work as with `reprise`.
@main
enum ShopReprise {
    static func main() async {
        await Reprise.main(projections: [CustomerStatsInSwift()])
    }
}
