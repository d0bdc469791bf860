"""behave, run with the step definitions and hooks that ship in this package.

behave's own runner looks for ``steps/`` and ``environment.py`` beside the features; this one takes
them from :mod:`llama_orch.bdd._steps` instead, so any folder of ``.feature`` files (the project's,
or one a CI job writes) runs against the same steps, from an installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from behave.__main__ import run_behave
from behave.configuration import Configuration
from behave.runner import Runner

from llama_orch.bdd import _steps

__all__ = ["run_features"]


class _PackageRunner(Runner):  # type: ignore[misc]  # behave is untyped
    def setup_paths(self) -> None:
        first = Path(str(self.config.paths[0])).resolve()
        base = first if first.is_dir() else first.parent
        self.base_dir = self.config.base_dir = str(base)

    def load_hooks(self, filename: str | None = None) -> None:
        self.hooks.update(_steps.HOOKS)

    def load_step_definitions(self, extra_step_paths: list[str] | None = None) -> None:
        self.step_registry = _steps.registry()


def run_features(paths: list[str], base_url: str, behave_args: list[str], *, token: str | None = None) -> int:
    """Run the features at ``paths`` against ``base_url``; behave's exit status (0: all passed).

    ``token`` is handed to the steps' client in memory (never on a command line)."""
    args = list(behave_args)
    if not any(a in ("-f", "--format") or a.startswith("--format=") for a in args):
        args += ["--format", "plain"]
    config: Any = Configuration(command_args=[*args, "--define", f"base_url={base_url}", *paths], load_config=False)
    if token:
        config.userdata["token"] = token
    return int(run_behave(config, runner_class=_PackageRunner))
