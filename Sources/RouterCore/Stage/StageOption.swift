/// Something a stage declaration lists as one of its options: an ``OptionDeclaration`` or a typed ``Option``.
public protocol OptionDeclaring: Sendable {
    /// The option's one declaration.
    var declaration: OptionDeclaration { get }
}

extension OptionDeclaration: OptionDeclaring {
    /// The declaration itself.
    public var declaration: OptionDeclaration { self }
}

/// One option of a stage kind, declared once and read typed: its name, type, default and description live here,
/// and the stage reads its value with ``StageOptions/value(_:)``, never by its name again.
///
/// ```swift
/// static let path = StageOption<String>.string("path", "File to append to.")
/// static let flushCount = StageOption<Int>.integer("flush_count", 1...1_000_000, default: 100, "Write when ...")
/// static let declaration = StageDeclaration(type: "my_file", summary: "...", options: [path, flushCount])
/// init(context: StageContext) throws { path = try context.options.value(Self.path) }
/// ```
public struct StageOption<Value: Sendable>: OptionDeclaring {
    /// The declaration that the YAML check, `routerd stages` and docs/stages.md read.
    public let declaration: OptionDeclaration
    // nil in, for an option the config did not set; nil out, for a value of another type than declared.
    private let convert: @Sendable (OptionValue?) -> Value??

    /// Makes a typed option from its declaration and how to read its checked value; `convert` gets nil when the
    /// option has no value, and returns nil when the value has another type than declared.
    public init(_ declaration: OptionDeclaration, convert: @escaping @Sendable (OptionValue?) -> Value??) {
        self.declaration = declaration
        self.convert = convert
    }

    /// The option's name.
    public var name: String { declaration.name }

    /// The typed value of `value` (nil when the option has none), or nil when it cannot be read as `Value`.
    fileprivate func read(_ value: OptionValue?) -> Value?? {
        convert(value ?? declaration.defaultValue)
    }
}

extension OptionDeclaration {
    /// The declared default, if any.
    public var defaultValue: OptionValue? {
        if case .defaultValue(let value) = requirement { return value }
        return nil
    }
}

extension StageOptions {
    /// The option's value: as the config set it, else its declared default.
    ///
    /// Throws a ``StageError`` with the code ``StageError/Code/internalError`` only when the stage's declaration
    /// and its code disagree (an option it did not declare, a required option the graph check let through): the
    /// checked config itself never makes it throw.
    public func value<Value>(_ option: StageOption<Value>) throws(StageError) -> Value {
        switch option.read(values[option.name]) {
        case .some(.some(let value)): return value
        case .some(.none):
            throw StageError(.internalError, "option '\(option.name)' has no value")
        case .none:
            throw StageError(
                .internalError,
                "option '\(option.name)' is not a \(option.declaration.type.displayName) (the stage's declaration "
                    + "and its code disagree)")
        }
    }
}

// MARK: - Declaring options of each type

extension StageOption where Value == String {
    /// A required text option.
    public static func string(_ name: String, _ description: String) -> StageOption {
        StageOption(OptionDeclaration(name, .string, .required, description))
    }

    /// A text option with a default.
    public static func string(_ name: String, default value: String, _ description: String) -> StageOption {
        StageOption(OptionDeclaration(name, .string, .defaultValue(.string(value)), description))
    }

    /// One of `values`, with a default.
    public static func oneOf(_ name: String, _ values: [String], default value: String, _ description: String)
        -> StageOption
    {
        StageOption(OptionDeclaration(name, .oneOf(values), .defaultValue(.string(value)), description))
    }
}

extension StageOption where Value == String? {
    /// A text option that may be left out (nil).
    public static func optionalString(_ name: String, _ description: String) -> StageOption {
        StageOption(OptionDeclaration(name, .string, .optional, description))
    }

    /// One of `values`, or left out (nil).
    public static func optionalOneOf(_ name: String, _ values: [String], _ description: String) -> StageOption {
        StageOption(OptionDeclaration(name, .oneOf(values), .optional, description))
    }
}

extension StageOption where Value == Bool {
    /// A boolean option with a default.
    public static func bool(_ name: String, default value: Bool, _ description: String) -> StageOption {
        StageOption(OptionDeclaration(name, .bool, .defaultValue(.bool(value)), description))
    }
}

extension StageOption where Value == Int {
    /// A whole number within `range`, with a default.
    public static func integer(_ name: String, _ range: ClosedRange<Int>, default value: Int, _ description: String)
        -> StageOption
    {
        StageOption(OptionDeclaration(name, .integer(range), .defaultValue(.integer(value)), description))
    }

    /// A byte count within `range`, with a default.
    public static func size(_ name: String, _ range: ClosedRange<Int>, default value: Int, _ description: String)
        -> StageOption
    {
        StageOption(OptionDeclaration(name, .size(range), .defaultValue(.size(value)), description))
    }
}

extension StageOption where Value == Duration {
    /// A duration within `range`, with a default.
    public static func duration(
        _ name: String, _ range: ClosedRange<Duration>, default value: Duration, _ description: String
    ) -> StageOption {
        StageOption(OptionDeclaration(name, .duration(range), .defaultValue(.duration(value)), description))
    }
}

extension StageOption where Value == [String] {
    /// A list of text (or of `element` words), required.
    public static func strings(_ name: String, of element: OptionType = .string, _ description: String)
        -> StageOption
    {
        StageOption(OptionDeclaration(name, .list(element), .required, description))
    }

    /// A list of text (or of `element` words), with a default.
    public static func strings(
        _ name: String, of element: OptionType = .string, default value: [String], _ description: String
    ) -> StageOption {
        StageOption(
            OptionDeclaration(name, .list(element), .defaultValue(.list(value.map { .string($0) })), description))
    }
}

// MARK: - Reading a declaration typed

/// A Swift type an option's checked value converts to: `String` (text and enum words), `Bool`, `Int` (integers
/// and sizes), `Duration`, `[String]`, `[String: String]`, and any of them optional (for options that may be
/// left out).
public protocol OptionValueConvertible: Sendable {
    /// The value for `value` (nil: the option has none), `.some(nil)` when it has none and must have one, or nil
    /// when the value has another type.
    static func converted(_ value: OptionValue?) -> Self??
}

extension StageOption where Value: OptionValueConvertible {
    /// Makes a typed option from a declaration written out in full; the value's Swift type must fit the declared
    /// type (a compliance test reads every declared default through it).
    public init(_ declaration: OptionDeclaration) {
        self.init(declaration, convert: Value.converted)
    }
}

extension String: OptionValueConvertible {
    /// Text and enum words.
    public static func converted(_ value: OptionValue?) -> String?? {
        guard let value else { return .some(nil) }
        guard case .string(let text) = value else { return nil }
        return text
    }
}

extension Bool: OptionValueConvertible {
    /// Booleans.
    public static func converted(_ value: OptionValue?) -> Bool?? {
        guard let value else { return .some(nil) }
        guard case .bool(let flag) = value else { return nil }
        return flag
    }
}

extension Int: OptionValueConvertible {
    /// Whole numbers and sizes (bytes).
    public static func converted(_ value: OptionValue?) -> Int?? {
        switch value {
        case nil: return .some(nil)
        case .integer(let number)?, .size(let number)?: return number
        default: return nil
        }
    }
}

extension Duration: OptionValueConvertible {
    /// Durations.
    public static func converted(_ value: OptionValue?) -> Duration?? {
        guard let value else { return .some(nil) }
        guard case .duration(let duration) = value else { return nil }
        return duration
    }
}

extension Array: OptionValueConvertible where Element == String {
    /// Lists of text or enum words.
    public static func converted(_ value: OptionValue?) -> [String]?? {
        guard let value else { return .some(nil) }
        guard case .list(let items) = value else { return nil }
        var texts: [String] = []
        for item in items {
            guard case .string(let text) = item else { return nil }
            texts.append(text)
        }
        return texts
    }
}

extension Dictionary: OptionValueConvertible where Key == String, Value == String {
    /// Mappings of names to text.
    public static func converted(_ value: OptionValue?) -> [String: String]?? {
        guard let value else { return .some(nil) }
        guard case .mapping(let entries) = value else { return nil }
        var texts: [String: String] = [:]
        for (key, item) in entries {
            guard case .string(let text) = item else { return nil }
            texts[key] = text
        }
        return texts
    }
}

extension Optional: OptionValueConvertible where Wrapped: OptionValueConvertible {
    /// An option that may be left out: nil when it has no value.
    public static func converted(_ value: OptionValue?) -> Wrapped??? {
        guard let value else { return .some(.some(nil)) }
        guard let converted = Wrapped.converted(value), let wrapped = converted else { return nil }
        return .some(.some(wrapped))
    }
}
