"""strkit: small string and number helpers, one module per requirement (see specs/strkit.md)."""
