import RepriseCommandLine

// `reprise-fault-injection`: the `reprise` command line with the crash points of REPRISE_FAULT
// installed (FaultInjection.swift). Built for the tests only; never shipped as `reprise`.
await Reprise.main(projections: [], hooks: FaultInjection.hooks())
