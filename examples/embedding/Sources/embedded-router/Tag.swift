import Router

/// A custom filter that changes entries: adds `"<field>":"<value>"` to every JSON object, through
/// `Batch.rewriting`, so that acks, senders and delivery tracking stay as they were.
final class Tag: FilterStage {
    static let field = StageOption<String>.string("field", default: "tagged_by", "The field to add.")
    static let value = StageOption<String>.string("value", "Its text.")

    static let declaration = StageDeclaration(
        type: "tag", summary: "Adds a field with a fixed text to every JSON object entry.", options: [field, value],
        example: StageExample("value: example"))

    private let member: [UInt8]

    init(context: StageContext) throws {
        let field = try context.options.value(Self.field)
        let value = try context.options.value(Self.value)
        member = Array((Tag.quoted(field) + ":" + Tag.quoted(value)).utf8)
    }

    func process(_ batch: Batch, into output: inout FilterOutput) {
        output.emit(
            batch.rewriting { entry, rewritten in
                // `{...}` becomes `{...,"field":"value"}`; anything else stays as it is.
                guard entry.count >= 2, entry.first == UInt8(ascii: "{"), entry.last == UInt8(ascii: "}") else {
                    return false
                }
                rewritten.append(contentsOf: entry.dropLast())
                let empty = entry.dropFirst().dropLast().allSatisfy { $0 == 0x20 || $0 == 0x09 }
                if !empty { rewritten.append(UInt8(ascii: ",")) }
                rewritten.append(contentsOf: member)
                rewritten.append(UInt8(ascii: "}"))
                return true
            })
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                out +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
