"""orchestratord's HTTP face (aiohttp.web): routes, SSE writing, middleware, the top-level config,
and the wiring of the rooms (``app.create_app``). The scheduling itself lives in
:mod:`llama_orch.scheduler`; nothing below the server imports it (import-linter checks)."""
