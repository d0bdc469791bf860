"""tinykit's tests: one file per requirement, each test marked with the id it checks."""
