"""Numbers in requests as JSON Schema sees them.

pydantic's lax ``int``/``float`` also take ``true``/``false`` and numeric strings (``"5"``), which
the schemas refuse; its strict ``int`` refuses ``5.0``, which JSON Schema calls an integer. These
take exactly JSON numbers: ``Int`` any number without a fractional part, ``Float`` any number.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _json_number(value: Any) -> Any:
    # bool is an int subclass in Python; str and bytes would be parsed by lax mode.
    if isinstance(value, bool | str | bytes | bytearray):
        raise ValueError("must be a JSON number")
    return value


Int = Annotated[int, BeforeValidator(_json_number)]
Float = Annotated[float, BeforeValidator(_json_number)]
