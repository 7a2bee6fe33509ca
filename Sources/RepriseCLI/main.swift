import RepriseCommandLine

// The `reprise` executable: the command line library with the projection files only.
await Reprise.main()
