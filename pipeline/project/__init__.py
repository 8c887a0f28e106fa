"""The project's own tools: params overrides and the CI reproduction check."""
