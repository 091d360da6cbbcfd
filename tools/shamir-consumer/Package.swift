// swift-tools-version:6.1
// A package outside spike-recovery that depends on its `Shamir` product by
// path, as another project would: it must build (no unsafe flags in the
// targets of the product it uses) and split and recover a key. CI runs it (.ci/run).
import PackageDescription

let package = Package(
    name: "shamir-consumer",
    dependencies: [.package(name: "spike-recovery", path: "../..")],
    targets: [
        .executableTarget(
            name: "shamir-consumer",
            dependencies: [.product(name: "Shamir", package: "spike-recovery")]),
    ]
)
