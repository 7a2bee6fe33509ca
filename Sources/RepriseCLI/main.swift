import CJemalloc
import RepriseCommandLine

// The `reprise` executable: the command line library with the projection files only, on
// jemalloc (CJemalloc: linked, not called; MemoryRelease configures it).
await Reprise.main()
