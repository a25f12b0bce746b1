"""The mark_bits_disjoint test: marks with no bit in common."""

import pytest

from ansible_collections.tproxy.envoy.plugins.test.mark_bits import mark_bits_disjoint


@pytest.mark.parametrize("value,other", [(2, 1), ("2", 1), (0x100, 0xff), (4, "3")])
def test_marks_without_a_common_bit(value, other):
    assert mark_bits_disjoint(value, other)


@pytest.mark.parametrize("value,other", [(1, 1), (3, 1), ("6", 2), (0xffffffff, 0x10), (True, 2), (-2, 1), ("x", 1), (None, 1), (2.0, 1)])
def test_overlapping_or_not_marks(value, other):
    assert not mark_bits_disjoint(value, other)
