"""``bdd-runner``: run Gherkin features against a live orchestratord (OC-CLI-3101).

    bdd-runner                                                    # every feature under tests/bdd/features
    LLORCH_BDD_FEATURE_PATH=tests/bdd/features/backpressure.feature bdd-runner   # one feature: a targeted gate

Features run with behave; their step definitions live beside them (``steps/`` next to the
features, behave's convention). The server is ``LLORCH_BASE_URL`` when set; otherwise the runner
starts an orchestratord on a free 127.0.0.1 port for the run (with ``LLORCH_BDD_CONFIG``, or the
config shipped here: a small, slow mock pool whose queue fills quickly) and stops it by its pid.
The exit status is behave's: non-zero when any step fails or is undefined; 2 for a bad path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llama_orch.bdd._server import EmbeddedOrchestratord

DEFAULT_FEATURES = "tests/bdd/features"
DEFAULT_CONFIG = Path(__file__).with_name("orchestratord.yaml")

__all__ = ["DEFAULT_CONFIG", "DEFAULT_FEATURES", "EmbeddedOrchestratord", "main"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(os.environ.get("LLORCH_BDD_FEATURE_PATH") or DEFAULT_FEATURES)
    if not path.exists():
        print(f"bdd-runner: no feature file or folder at {path} (LLORCH_BDD_FEATURE_PATH)", file=sys.stderr)
        return 2
    # Imported here: behave is only needed when features actually run.
    from behave.__main__ import main as behave_main

    base_url = os.environ.get("LLORCH_BASE_URL")
    server: EmbeddedOrchestratord | None = None
    try:
        if not base_url:
            server = EmbeddedOrchestratord(config=os.environ.get("LLORCH_BDD_CONFIG") or DEFAULT_CONFIG)
            base_url = server.start()
            print(f"bdd-runner: orchestratord started at {base_url} (pid {server.process and server.process.pid})")
        os.environ["LLORCH_BASE_URL"] = base_url
        status = behave_main([str(path), "--no-capture", "--format", "plain", "--logging-level", "WARNING", *args])
        return int(status)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
