"""tinykit: one-line helpers, one module per requirement (see specs/tinykit.md)."""
