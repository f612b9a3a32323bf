/// Every model family the pipeline knows, in the order help texts list them. A family is one
/// line here and files of its own (docs/ADDING_A_FAMILY.md).
public enum ModelRegistry {
    public static let families: [ModelFamily] = [
        .smolVLM,
        .qwen25VL,
        .llava,
        .llavaNext,
        .llavaNextVideo,
    ]

    /// The family claiming `modelType`, if any.
    public static func family(modelType: String) -> ModelFamily? {
        families.first { $0.modelTypes.contains(modelType) }
    }

    /// The family reading `mmproj` (its `clip.projector_type`, and the family's own test where
    /// two share a type), if any.
    public static func family(mmproj: MmprojFile) -> ModelFamily? {
        families.first { family in
            guard let support = family.mmproj else { return false }
            return support.projectorTypes.contains(mmproj.projectorType) && support.accepts(mmproj)
        }
    }

    /// Every `clip.projector_type` some family reads, sorted.
    public static var projectorTypes: [String] { Array(Set(families.flatMap { $0.mmproj?.projectorTypes ?? [] })).sorted() }

    /// Every claimed `model_type`, sorted.
    public static var modelTypes: [String] { families.flatMap(\.modelTypes).sorted() }

    /// "SmolVLM2, Qwen2.5-VL", for help texts.
    public static var familyNames: String { families.map(\.name).joined(separator: ", ") }

    /// The help text of a `--model` option.
    public static var modelHelp: String {
        "A Hugging Face model directory (\(familyNames)), or a llama.cpp text-model .gguf with --mmproj."
    }

    /// The help text of an `--mmproj` option.
    public static var mmprojHelp: String {
        "llama.cpp's vision projector GGUF (as llama-mtmd-cli's --mmproj) for a text-model .gguf given as --model; "
            + "projector types: \(projectorTypes.joined(separator: ", "))."
    }
}
