import Router

/// Router's `SourceLocation`, named apart from swift-testing's type of the same name.
typealias ConfigLocation = SourceLocation
