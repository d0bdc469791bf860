"""``hf:`` model refs through huggingface_hub (its cache layout under ``<cache_dir>/hf``)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Any

from llama_orch.errors import ModelFetchForbidden, ModelUnavailable
from llama_orch.pools._cache import Progress, verify_file

log = logging.getLogger("llama_orch.pools.models")

_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


def _hf_endpoint() -> str | None:
    """Read at call time (huggingface_hub reads ``HF_ENDPOINT`` once, at import)."""
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or None


async def resolve_hf(
    repo_id: str,
    filename: str | None,
    revision: str | None,
    *,
    cache_dir: Path,
    allow_network: bool,
    want: str | None,
    max_bytes: int | None,
    progress: Progress | None,
) -> Path:
    """The local path of ``filename`` (or the repo's one .gguf) in ``repo_id`` at ``revision``."""
    loop = asyncio.get_running_loop()

    def report(done: int, total: int | None) -> None:
        if progress is not None:
            loop.call_soon_threadsafe(progress, done, total)

    hf_cache = cache_dir / "hf"
    path = await asyncio.to_thread(
        _hf_fetch, repo_id, filename, revision or "main", hf_cache, allow_network, max_bytes, report
    )
    if want is not None:
        await verify_file(path, want)
    return path


def _hf_fetch(
    repo_id: str,
    wanted: str | None,
    revision: str,
    hf_cache: Path,
    allow_network: bool,
    max_bytes: int | None,
    report: Progress,
) -> Path:
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    endpoint = _hf_endpoint()
    where = f"{repo_id}@{revision}"
    filename = wanted or _hf_single_gguf(repo_id, revision, hf_cache, allow_network, endpoint)
    forbidden = ModelFetchForbidden(
        f"model hf:{where}/{filename} is not cached (looked in {hf_cache}) and network fetches are forbidden "
        "(models.allow_network: false)",
        details={"cache_dir": str(hf_cache)},
    )
    # A sharded model (name-00001-of-00003.gguf) is loaded from its first shard, next to the others.
    shard = _SHARD.search(filename)
    names = [filename]
    if shard is not None:
        count, stem = int(shard.group(2)), filename[: shard.start()]
        names = [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    try:
        if allow_network and max_bytes is not None:
            size = 0
            for name in names:
                info = hf_hub_download(
                    repo_id, name, revision=revision, cache_dir=hf_cache, endpoint=endpoint, dry_run=True
                )
                size += (info.file_size or 0) if info.will_download else 0
            if size > max_bytes:
                raise ModelUnavailable(
                    f"model hf:{where}/{filename} is {size} bytes, over the cap of {max_bytes} (models.max_bytes)",
                    details={"size": size, "max_bytes": max_bytes},
                )
        paths = [
            hf_hub_download(
                repo_id,
                name,
                revision=revision,
                cache_dir=hf_cache,
                endpoint=endpoint,
                local_files_only=not allow_network,
                tqdm_class=_progress_class(report),
            )
            for name in names
        ]
        local = paths[0]
    except hf_errors.LocalEntryNotFoundError as exc:
        if not allow_network:
            raise forbidden from exc
        raise ModelUnavailable(f"cannot reach the Hub for hf:{where}/{filename}: {exc}", retriable=True) from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError) as exc:
        raise ModelUnavailable(f"hf:{where}/{filename} not found on the Hub ({type(exc).__name__})") from exc
    except (hf_errors.HfHubHTTPError, OSError) as exc:
        raise ModelUnavailable(
            f"fetching hf:{where}/{filename} failed ({type(exc).__name__}); try again", retriable=True
        ) from exc
    # The snapshot path, not the blob it links to: llama.cpp finds shards by name beside it.
    return Path(local)


def _hf_single_gguf(repo_id: str, revision: str, hf_cache: Path, allow_network: bool, endpoint: str | None) -> str:
    """The repo's one ``.gguf`` (or the first shard of its one sharded model)."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf_errors

    files: list[str] | None = None
    if allow_network:
        try:
            files = HfApi(endpoint=endpoint).list_repo_files(repo_id, revision=revision)
        except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError) as exc:
            raise ModelUnavailable(f"hf:{repo_id}@{revision} not found on the Hub ({type(exc).__name__})") from exc
        except (hf_errors.HfHubHTTPError, OSError) as exc:
            log.info("listing hf:%s failed (%s); looking in the local cache", repo_id, type(exc).__name__)
    if files is None:
        files = _hf_cached_files(hf_cache, repo_id, revision)
        if files is None:
            if not allow_network:
                raise ModelFetchForbidden(
                    f"model hf:{repo_id}@{revision} is not cached (looked in {hf_cache}) and network fetches are "
                    "forbidden (models.allow_network: false)"
                )
            raise ModelUnavailable(
                f"cannot list hf:{repo_id}@{revision} on the Hub and it is not cached", retriable=True
            )
    # Vision projectors (mmproj-*.gguf) ride along with a model; they are not one.
    ggufs = sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in f.rsplit("/", 1)[-1].lower())
    shards = {m.group(0) for f in ggufs if (m := _SHARD.search(f))}
    whole = [f for f in ggufs if not _SHARD.search(f)]
    firsts = [f for f in ggufs if (m := _SHARD.search(f)) and int(m.group(1)) == 1]
    candidates = whole + firsts
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelUnavailable(
            f"hf:{repo_id}@{revision} has no .gguf file" + (f" (only shards: {sorted(shards)})" if shards else "")
        )
    raise ModelUnavailable(
        f"hf:{repo_id}@{revision} has {len(candidates)} .gguf files; name one: "
        + ", ".join(f"hf:{repo_id}/{c}" for c in candidates),
        details={"candidates": candidates},
    )


def _hf_cached_files(hf_cache: Path, repo_id: str, revision: str) -> list[str] | None:
    """Files of ``repo_id`` at ``revision`` in the Hub cache layout, or None when not cached."""
    storage = hf_cache / ("models--" + repo_id.replace("/", "--"))
    commit = revision
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        try:
            commit = (storage / "refs" / revision).read_text(encoding="utf-8").strip()
        except OSError:
            return None
    snapshot = storage / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    return [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]


def _progress_class(report: Progress) -> Any:
    """A tqdm class for huggingface_hub that forwards progress to ``report`` and draws nothing."""
    from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

    class _Report(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            self._done = int(kwargs.get("initial") or 0)
            self._total = kwargs.get("total")

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            report(self._done, self._total)
            return None

    return _Report
