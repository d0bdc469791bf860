"""llama-orch benchmarks: admission, token relay and start-time prediction (run ``scripts/bench``)."""
