"""llama-orch."""
