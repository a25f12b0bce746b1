# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""One reading of "a TCP/UDP port" for the collection's tests and filters."""

from __future__ import annotations

from ansible.module_utils.common.validation import check_type_int


def port_number(value):
    """The port number ``value`` stands for (1 to 65535), or None.

    A value the argument spec accepts as ``int`` counts: also the string "8080"
    that ``-e name=8080`` gives. Booleans are refused (True is an int in Python).
    """
    if isinstance(value, bool):
        return None
    try:
        number = check_type_int(value)
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= 65535 else None
