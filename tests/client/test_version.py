"""Version ranges (OC-CLI-2202)."""

from __future__ import annotations

import pytest

from llama_orch.client import SUPPORTED_API_VERSIONS, VersionRange
from llama_orch_api import API_VERSION


@pytest.mark.parametrize(
    ("spec", "version", "inside"),
    [
        (">=0.1,<0.2", "0.1.0", True),
        (">=0.1,<0.2", "0.1.99", True),
        (">=0.1,<0.2", "0.2.0", False),
        (">=0.1,<0.2", "0.0.9", False),
        (">=0.1,<0.2", "0.1", True),
        (">=0.1,<0.2", "0.1.3-rc1", True),
        (">=0.1,<0.2", "banana", False),
        ("==1.2", "1.2.0", True),
        ("!=1.2.1, >1", "1.2.1", False),
        ("<=2", "2.0.0", True),
        (">1", "1.0.0", False),
    ],
)
def test_contains(spec: str, version: str, inside: bool) -> None:
    assert VersionRange(spec).contains(version) is inside


def test_the_sdk_supports_the_api_types_it_ships_with() -> None:
    assert VersionRange(SUPPORTED_API_VERSIONS).contains(API_VERSION)


@pytest.mark.parametrize("spec", ["", "0.1", ">=x", ">=0.1,,<1", "~=0.1"])
def test_a_malformed_range_is_a_value_error(spec: str) -> None:
    with pytest.raises(ValueError, match="bad version range"):
        VersionRange(spec)
