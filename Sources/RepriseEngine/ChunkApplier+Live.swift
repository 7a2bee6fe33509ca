extension ChunkApplier {
    /// An applier for the live half (RepriseLive's runner and partitions): no rebuild hooks.
    package init(store: ReadModelStore) {
        self.init(store: store, hooks: RebuildHooks())
    }
}
