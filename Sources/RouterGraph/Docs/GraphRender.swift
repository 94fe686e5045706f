import RouterConfig
import RouterCore
import RouterSupport

/// Renders a checked plan as text or Graphviz dot (`routerd graph`).
public enum GraphRender {
    /// One line per stage: `filters.errors (match_level) <- valid`.
    public static func text(_ plan: RouterPlan) -> String {
        var out = ""
        for stage in plan.stages {
            out += "\(stage.path) (\(stage.kind.declaration.type))"
            if !stage.upstreams.isEmpty { out += " <- " + stage.upstreams.map(\.description).joined(separator: ", ") }
            out += "\n"
        }
        return out
    }

    /// A `digraph` with one node per stage and one edge per upstream, labelled with non-default ports.
    public static func dot(_ plan: RouterPlan) -> String {
        var out = "digraph routerd {\n  rankdir=LR;\n"
        for stage in plan.stages {
            let shape = stage.kind.role == .input ? "invhouse" : stage.kind.role == .output ? "house" : "box"
            out +=
                "  \(JSONText.quoted(stage.name)) [shape=\(shape), label=\(JSONText.quoted(stage.name + "\n" + stage.kind.declaration.type))];\n"
        }
        for stage in plan.stages {
            for upstream in stage.upstreams {
                out += "  \(JSONText.quoted(upstream.stage)) -> \(JSONText.quoted(stage.name))"
                if upstream.port != 0 { out += " [label=\(JSONText.quoted(upstream.portName))]" }
                out += ";\n"
            }
        }
        return out + "}\n"
    }
}
