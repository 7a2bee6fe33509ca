import Foundation

/// Runs the `reprise` executable as a child process, the way an operator or a scheduler does.
struct ProcessOutcome {
    var status: Int32
    var killedBySignal: Bool
    var standardOutput: String
    var standardError: String
}

func runReprise(_ arguments: [String], environment extra: [String: String] = [:]) throws -> ProcessOutcome {
    try runProcess(RebuildEnvironment.repriseBinary(), arguments, environment: extra)
}

/// Runs `scripts/services ARGS` (for example `rabbitmqctl stop_app`) against the local servers.
func runServicesCommand(_ arguments: [String]) throws -> ProcessOutcome {
    try runProcess("/bin/bash", [RebuildEnvironment.repositoryRoot() + "/scripts/services"] + arguments)
}

/// Runs a program in the repository root with extra environment variables; collects its output.
func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> ProcessOutcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    process.environment = environment
    process.currentDirectoryURL = URL(fileURLWithPath: RebuildEnvironment.repositoryRoot())
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Read before waiting: a full pipe would otherwise block the child.
    let outData = output.fileHandleForReading.readDataToEndOfFile()
    let errData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessOutcome(
        status: process.terminationStatus, killedBySignal: process.terminationReason == .uncaughtSignal,
        standardOutput: String(decoding: outData, as: UTF8.self), standardError: String(decoding: errData, as: UTF8.self))
}
