// swift-tools-version: 6.1
import PackageDescription


let package = Package(
    name: "hiprune-video",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "hiprune-video", targets: ["hiprune-video"]),
        .executable(name: "hiprune-bench", targets: ["hiprune-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server of `serve` only (Sources/Serve); no other module compiles against NIO.
        // Default traits off: they pull swift-configuration, which the server does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        // Already in Hummingbird's graph: the graceful-shutdown group and its logger.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat libavcodec libswscale libavutil",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libavutil-dev"])]
        ),
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(name: "CKernels"),
        .target(name: "Console"),
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "Stream", dependencies: ["CFFmpeg", "Console"]),
        .target(name: "Prune"),
        .target(name: "Vision", dependencies: ["CKernels", "Tensor", "Prune"]),
        .target(name: "VLM", dependencies: ["Tensor", "Vision", "Prune"]),
        .target(name: "Pipeline", dependencies: ["Console", "Stream", "Tensor", "Vision", "Prune", "VLM"]),
        .target(
            name: "Serve",
            dependencies: ["Console", "Pipeline", "Stream", "Vision", "Prune", "VLM",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "hiprune-video",
            dependencies: ["Console", "Pipeline", "Serve", "Stream", "Tensor", "Vision", "Prune", "VLM",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "hiprune-bench",
            dependencies: ["Pipeline", "Stream", "Tensor", "Vision", "Prune", "VLM",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Paths, comparisons and synthetic frames shared by every test target, defined once.
        .target(name: "TestSupport", dependencies: ["Prune"], path: "Tests/TestSupport"),
        .testTarget(name: "StreamTests", dependencies: ["Stream", "TestSupport"]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "TestSupport"]),
        .testTarget(name: "PruneTests", dependencies: ["Prune", "TestSupport"]),
        .testTarget(name: "VisionTests", dependencies: ["Vision", "Tensor", "Prune", "TestSupport"]),
        .testTarget(name: "VLMTests", dependencies: ["VLM", "Vision", "Tensor", "Prune", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Stream", "Vision", "VLM", "Prune", "Tensor", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Pipeline", "Tensor", "TestSupport"]),
    ]
)
