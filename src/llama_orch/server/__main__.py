"""``orchestratord``: run the orchestrator HTTP service.

orchestratord                       # embedded default on 127.0.0.1:8080
orchestratord --config pools.yaml   # or LLORCH_CONFIG=pools.yaml
orchestratord --demo "Say hi"       # stream one completion to stdout once ready, then keep serving
orchestratord --hash-token          # make a bearer token and print it with the hash for auth.tokens

Without ``auth`` in the config it serves only on a loopback address (the local dev mode, said at
start-up); any other bind without authentication refuses to start (exit status 2).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

from aiohttp import web

from llama_orch.auth import check_bind, hash_token, new_token, server_ssl_context
from llama_orch.errors import ConfigError
from llama_orch.policy import build_policy, set_default_redactor
from llama_orch.server._demo import stream_demo
from llama_orch.server._gc import configure as configure_gc
from llama_orch.server._http import ORCH
from llama_orch.server.app import create_app
from llama_orch.server.config import config_json_schema, load_config
from llama_orch.telemetry import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestratord", description="llama-orch orchestrator service")
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("LLORCH_CONFIG") or None,
        help="YAML config (env LLORCH_CONFIG); the embedded default when absent",
    )
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--data-dir", default=None, help="where state is kept (default ./data)")
    parser.add_argument("--log-level", default=os.environ.get("LLORCH_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--print-config-schema", action="store_true", help="print the config file's JSON Schema and exit"
    )
    parser.add_argument(
        "--hash-token", action="store_true", help="print a new bearer token and its hash for auth.tokens, and exit"
    )
    parser.add_argument(
        "--demo",
        metavar="PROMPT",
        default=None,
        help="once serving, stream one completion of PROMPT to stdout through the API, then keep serving",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.print_config_schema:
        sys.stdout.write(config_json_schema())
        return
    if args.hash_token:
        token = new_token()
        sys.stdout.write(f"token:  {token}\nsha256: {hash_token(token)}\n")
        return
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"orchestratord: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    server = config.server
    if args.host is not None or args.port is not None:
        server = server.model_copy(
            update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        )
        config = config.model_copy(update={"server": server})
    try:
        auth_line = check_bind(server.host, config.auth)
        # Logs, narration and errors redact what the config names (patterns, secret env values).
        set_default_redactor(config.policy.redaction.redactor())
        policy = build_policy(config.policy)
    except ConfigError as exc:
        print(f"orchestratord: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(args.log_level, fmt=config.telemetry.log_format, policy=policy.write)
    logging.getLogger("llama_orch.server").info(auth_line, extra={"narration": auth_line})
    mtls = config.auth.mtls
    ssl_context = (
        server_ssl_context(mtls.cert_file, mtls.key_file, mtls.ca_file, required=mtls.required) if mtls else None
    )
    data_dir = Path(args.data_dir or config.data_dir or "data")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = config.model_copy(update={"data_dir": str(data_dir)})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(config)
    # Queued tasks are many small, long-lived objects: keep them (and start-up's) out of full
    # collections, and collect the young generation less often (server/_gc.py).
    orchestrator = app[ORCH]
    configure_gc(app, lambda: sum(len(pool.queue) for pool in orchestrator.pools.values()))
    source = args.config or "embedded default"
    pools = ", ".join(f"{p.id} (engine {p.engine}, model {p.model_ref})" for p in config.pools)

    port = server.port
    if args.demo and port == 0:  # the demo needs to know where to connect
        with socket.socket() as probe:
            probe.bind((server.host, 0))
            port = probe.getsockname()[1]
    demos: list[asyncio.Task[bool]] = []

    def announce(runner_print: str) -> None:
        print(f"orchestratord: config {source}; pools: {pools}", flush=True)
        print(runner_print, flush=True)
        if args.demo:
            host = "127.0.0.1" if server.host in ("0.0.0.0", "") else server.host
            demo = stream_demo(f"http://{host}:{port}", args.demo)
            demos.append(asyncio.get_running_loop().create_task(demo, name="demo"))

    async def stop_demo(app: web.Application) -> None:
        for task in demos:
            task.cancel()
        await asyncio.gather(*demos, return_exceptions=True)

    app.on_shutdown.append(stop_demo)
    web.run_app(app, host=server.host, port=port, access_log=None, print=announce, ssl_context=ssl_context)


if __name__ == "__main__":
    main()
