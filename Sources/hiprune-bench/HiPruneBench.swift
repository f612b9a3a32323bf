// Benchmarks; each subcommand in its own file.
import ArgumentParser
import Tensor
@main struct HiPruneBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hiprune-bench", abstract: "Benchmarks of hiprune-video beside their peers on this machine.", subcommands: [EncodeBench.self, PruneBench.self, PrefillBench.self, QwenBench.self, DecodeBench.self, QuantBench.self])
    /// The default main, after BLASRuntime.configure() (it may re-exec with OPENBLAS_CORETYPE set).
    static func main() async {
        BLASRuntime.configure()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand { try await asyncCommand.run() } else { try command.run() }
        } catch {
            exit(withError: error)
        }
    }
}
