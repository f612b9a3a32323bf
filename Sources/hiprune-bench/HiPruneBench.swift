// Benchmarks; each subcommand in its own file.
import ArgumentParser
import Foundation
import Tensor
@main struct HiPruneBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hiprune-bench", abstract: "Benchmarks of hiprune-video beside their peers on this machine.", subcommands: [EncodeBench.self, AskBench.self, PruneBench.self, PrefillBench.self, QwenBench.self, DecodeBench.self, QuantBench.self, LlavaBench.self])
    /// The default main, after BLASRuntime.configure() (it may re-exec with OPENBLAS_CORETYPE set).
    static func main() async {
        BLASRuntime.configure()
        do {
            try InstructionSet.validateEnvironment()
            var command = try parseAsRoot()
            // Every figure below depends on these: the CPU, the kernels' path, and how busy the machine is.
            let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3)
            print(InstructionSet.summary + ", load average " + load.joined(separator: " "))
            if var asyncCommand = command as? AsyncParsableCommand { try await asyncCommand.run() } else { try command.run() }
        } catch {
            exit(withError: error)
        }
    }
}
