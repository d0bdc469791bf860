import pytest

from tinykit.words import word_count


@pytest.mark.req("TINY-0001")
def test_word_count_counts_whitespace_separated_words() -> None:
    assert word_count("a bb  ccc") == 3
    assert word_count("one") == 1
    assert word_count("  ") == 0
