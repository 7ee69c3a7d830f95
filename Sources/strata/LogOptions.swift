import ArgumentParser
import Logging

/// `--log-level`, for the commands that run services (worker, coordinator, local).
struct LogOptions: ParsableArguments {
    @Option(help: "Least severe log messages shown on stderr: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level?

    /// Sends every logger of the process to stderr at `--log-level` (else `fallback`); the
    /// worker's and coordinator's messages carry metadata (stage, worker, request.id).
    func bootstrap(fallback: Logger.Level = .info) {
        let level = logLevel ?? fallback
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
