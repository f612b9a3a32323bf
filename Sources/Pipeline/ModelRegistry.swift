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

    /// Every claimed `model_type`, sorted.
    public static var modelTypes: [String] { families.flatMap(\.modelTypes).sorted() }

    /// "SmolVLM2, Qwen2.5-VL", for help texts.
    public static var familyNames: String { families.map(\.name).joined(separator: ", ") }

    /// The help text of a `--model` option.
    public static var modelHelp: String { "A Hugging Face model directory (\(familyNames))." }
}
