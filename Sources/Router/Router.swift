// The whole library in one import: the stage API (RouterCore), config loading (RouterConfig), the graph check
// (RouterGraph) and the runtime (RouterRuntime). A library user who wants less imports those modules alone.
@_exported public import RouterConfig
@_exported public import RouterCore
@_exported public import RouterGraph
@_exported public import RouterRuntime
