// Benchmarks; each subcommand in its own file.
import ArgumentParser
@main struct HiPruneBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hiprune-bench", abstract: "Benchmarks of hiprune-video beside their peers on this machine.", subcommands: [PruneBench.self])
}
