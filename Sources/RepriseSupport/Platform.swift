// Reprise is built and tested on Linux only (Glibc, /proc, the C client libraries through
// pkg-config). Package.swift declares no Apple platform; a build elsewhere stops here with a
// message instead of a list of missing symbols.
#if !os(Linux)
#error("Reprise builds on Linux only: see the platform note in Package.swift")
#endif
