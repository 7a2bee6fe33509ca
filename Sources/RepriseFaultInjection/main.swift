import RepriseCommandLine

// `reprise-fault-injection`: the `reprise` command line with the crash points of REPRISE_FAULT
// installed (FaultInjection.swift). Built for the tests only; never shipped as `reprise`. On
// glibc's malloc: the test binary links this target, and the tests' own process keeps glibc's.
await Reprise.main(projections: [], hooks: FaultInjection.hooks())
