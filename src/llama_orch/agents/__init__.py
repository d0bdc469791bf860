"""The auto-programmer: spec model, traceability, model I/O, edit application, workspaces, gates.

Each part is usable and tested on its own; this module names what is public.
"""

from __future__ import annotations

__all__: list[str] = []
