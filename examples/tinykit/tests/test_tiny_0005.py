import pytest

from tinykit.clamp import clamp


@pytest.mark.req("TINY-0005")
def test_clamp_keeps_a_value_between_low_and_high() -> None:
    assert clamp(15, 0, 10) == 10
    assert clamp(-3, 0, 10) == 0
    assert clamp(4, 0, 10) == 4
