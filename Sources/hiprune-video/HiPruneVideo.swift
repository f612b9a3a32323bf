import Console
import ArgumentParser
import Foundation
import Tensor

@main
struct HiPruneVideo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hiprune-video",
        abstract: "Answer questions about video with a fraction of the visual tokens (HiPrune).",
        subcommands: [
            // Each subcommand lives in its own file in this folder.
            ProbeCommand.self,
            FramesCommand.self,
            StatsCommand.self,
            CalibrateCommand.self,
            AskCommand.self,
            ServeCommand.self,
            LiveCommand.self,
            ChatCommand.self,
            InspectCommand.self,
            EncodeCommand.self,
            VisualizeCommand.self,
        ]
    )

    /// Every failure reaches the user as one line naming the input and the cause, and a non-zero exit.
    static func main() async {
        BLASRuntime.configure()  // before any BLAS call: may re-exec with OPENBLAS_CORETYPE set
        var command: ParsableCommand
        do {
            try InstructionSet.validateEnvironment()
            command = try parseAsRoot()
        } catch {
            fail(error, parsing: true)
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            fail(error, parsing: false)
        }
    }

    /// Help and version print as usual (on stdout, through Console); a bad flag or a failure prints one line, no usage dump.
    static func fail(_ error: any Error, parsing: Bool) -> Never {
        let code = exitCode(for: error)
        if code == .success || error is CleanExit {
            // Help and version go through Console so that a full disk or a closed pipe is told
            // as for any other output (the parser's own printing would exit 0 with the text lost).
            let text = fullMessage(for: error)
            if !text.isEmpty { Console.line(text) }
            Foundation.exit(0)
        }
        if error is ExitCode { Foundation.exit(code.rawValue) }
        PartialOutputs.removeAll()  // nothing half-written survives a failure
        // The parser's own errors (and ValidationError) read best through its message; ours are
        // typed errors whose description names the input and the cause.
        let message = parsing || error is ValidationError ? Self.message(for: error) : "\(error)"
        let line = message.split(whereSeparator: \.isNewline).map(String.init).joined(separator: " ")
        Console.err("hiprune-video: \(line)")
        Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
    }
}
