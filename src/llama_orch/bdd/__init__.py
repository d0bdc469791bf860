"""``bdd-runner``: run Gherkin features against a live orchestratord (OC-CLI-3101).

::

    bdd-runner                                             # every feature under tests/bdd/features
    LLORCH_BDD_FEATURE_PATH=tests/bdd/features/backpressure.feature bdd-runner    # a targeted gate
    bdd-runner --base-url http://127.0.0.1:8080 features/ -- --tags=@smoke -f json -o report.json

Features run with behave, against the step definitions that ship in this package
(:mod:`llama_orch.bdd._steps`, over the SDK), so any folder of ``.feature`` files can be run. The
server is ``--base-url`` or ``LLORCH_BASE_URL`` when given; otherwise the runner starts an
orchestratord on a free 127.0.0.1 port for the run, with ``--config`` / ``LLORCH_BDD_CONFIG`` or
the config shipped here (one slow mock slot and a queue of two, so backpressure shows with a few
tasks), and stops it by its pid. Arguments after ``--`` go to behave as they are.

Exit status: 0 when every scenario passed; 1 when a step failed or is undefined (behave's); 2 for
a feature path or config that does not exist; 3 when the embedded orchestratord did not start.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llama_orch.bdd._server import EmbeddedOrchestratord

DEFAULT_FEATURES = "tests/bdd/features"
DEFAULT_CONFIG = Path(__file__).with_name("orchestratord.yaml")

__all__ = ["DEFAULT_CONFIG", "DEFAULT_FEATURES", "EmbeddedOrchestratord", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bdd-runner",
        description="Run Gherkin features against a live orchestratord (arguments after -- go to behave).",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="FEATURE_PATH",
        help=f"feature files or folders (default: $LLORCH_BDD_FEATURE_PATH, else {DEFAULT_FEATURES})",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("LLORCH_BASE_URL") or None,
        help="a running orchestratord ($LLORCH_BASE_URL)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("LLORCH_TOKEN") or None,
        help="bearer token for an orchestratord with authentication on ($LLORCH_TOKEN)",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("LLORCH_BDD_CONFIG") or None,
        help="config of the orchestratord started when there is no base URL ($LLORCH_BDD_CONFIG; default: a small "
        "slow mock pool shipped with llama-orch)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    behave_args: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, behave_args = args[:at], args[at + 1 :]
    options = _parser().parse_args(args)
    paths = options.paths or [os.environ.get("LLORCH_BDD_FEATURE_PATH") or DEFAULT_FEATURES]
    for path in paths:
        if not Path(path).exists():
            print(f"bdd-runner: no feature file or folder at {path} (LLORCH_BDD_FEATURE_PATH)", file=sys.stderr)
            return 2
    config = Path(options.config) if options.config else DEFAULT_CONFIG
    if options.base_url is None and not config.is_file():
        print(f"bdd-runner: no orchestratord config at {config} (LLORCH_BDD_CONFIG)", file=sys.stderr)
        return 2

    # Imported here: the help and the checks above need no behave.
    from llama_orch.bdd._runner import run_features

    if options.base_url is not None:
        return run_features(paths, options.base_url, behave_args, token=options.token)
    server = EmbeddedOrchestratord(config)
    try:
        try:
            base_url = server.start()
        except (OSError, RuntimeError) as exc:
            print(f"bdd-runner: {exc}", file=sys.stderr)
            return 3
        pid = server.process.pid if server.process is not None else "?"
        print(f"bdd-runner: orchestratord (pid {pid}, config {config}) at {base_url}", flush=True)
        return run_features(paths, base_url, behave_args, token=options.token)
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
