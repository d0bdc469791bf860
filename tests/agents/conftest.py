"""The edit corpus is data (before/after trees of a pretend project), not tests to collect."""

from __future__ import annotations

collect_ignore_glob = ["edits_corpus/*"]
