"""``impl apply --pr``: the integration branch as a pull request (OC-CLI-2302), or what to open one with.

With ``[tool.llama-orch.pr] remote`` set, the integration branch is pushed there (``git push
REMOTE <integration-head>:refs/heads/<integration-branch>``); with ``tool`` (``gh`` or ``glab``)
set and on the PATH too, the pull request is opened with it. Whatever was not configured, the
branch stays, and a ``summary`` artifact (tag ``agent:pr-description``) holds the title and body
to open the pull request by hand. What happened, and why, is returned.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from llama_orch.agents._artifacts_client import AgentArtifacts
from llama_orch.agents._git import GitError
from llama_orch.agents._loop_config import LoopConfig
from llama_orch.agents._loop_repo import Repo

__all__ = ["open_pull_request"]


async def open_pull_request(
    repo: Repo, config: LoopConfig, head: str, body: str, artifacts: AgentArtifacts, *, parent: str | None
) -> dict[str, Any]:
    branch = repo.integration_branch
    base = config.pr.base or repo.head_branch or "main"
    title = f"llama-orch: {branch} ({head[:12]})"
    description = await artifacts.put(
        "summary", {"title": title, "body": body, "head": branch, "base": base, "commit": head}, parent=parent,
        tags=["agent:pr-description"],
    )  # fmt: skip
    out: dict[str, Any] = {"branch": branch, "base": base, "artifact": description.id, "pushed": False, "url": None}
    remote, tool = config.pr.remote, config.pr.tool
    if remote is None:
        out["why"] = "no pr.remote configured: the branch stays local; the description is the artifact"
        return out
    try:
        await repo.git("push", "--quiet", remote, f"{head}:refs/heads/{branch}")
    except GitError as exc:
        out["why"] = f"push to {remote!r} failed: {exc.stderr.strip()[:300]}"
        return out
    out["pushed"] = True
    if tool is None or shutil.which(tool) is None:
        missing = "no pr.tool configured" if tool is None else f"{tool!r} is not on the PATH"
        out["why"] = f"pushed to {remote}; {missing}: open the pull request from the description artifact"
        return out
    argv = [tool, "pr", "create", "--head", branch, "--base", base, "--title", title, "--body", body]
    if tool == "glab":
        argv = [tool, "mr", "create", "--source-branch", branch, "--target-branch", base, "--title", title,
                "--description", body, "--yes"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=repo.root, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode == 0:
        out["url"] = stdout.decode(errors="replace").strip().splitlines()[-1] if stdout.strip() else None
        out["why"] = f"opened with {tool}"
    else:
        out["why"] = f"{tool} failed ({proc.returncode}): {stderr.decode(errors='replace').strip()[:300]}"
    return out
