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
            LiveCommand.self,
            ChatCommand.self,
            InspectCommand.self,
            EncodeCommand.self,
        ]
    )

    /// Every failure reaches the user as one line naming the input and the cause, and a non-zero exit.
    static func main() async {
        BLASRuntime.configure()  // before any BLAS call: may re-exec with OPENBLAS_CORETYPE set
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as ExitCode {
            exit(withError: error)
        } catch let error as CleanExit {
            exit(withError: error)
        } catch let error as ValidationError {
            exit(withError: error)
        } catch {
            FileHandle.standardError.write(Data("hiprune-video: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }
}
