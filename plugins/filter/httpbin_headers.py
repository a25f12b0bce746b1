# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that normalises httpbin's /headers answer."""

from __future__ import annotations

DOCUMENTATION = r"""
name: httpbin_headers
author: tproxy.envoy contributors (@tproxy)
version_added: 0.1.0
short_description: Request headers from an httpbin /headers answer, lower-cased
description:
  - >-
    httpbin answers C({"headers": {"X-Name": "value"}}); go-httpbin answers C({"headers": {"X-Name": ["value"]}}).
    This returns C({"x-name": "value"}) for both (several values are joined with C(, )).
options:
  _input:
    description: The parsed JSON body of C(GET /headers).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Read what Envoy added
  ansible.builtin.debug:
    msg: "{{ (response.json | tproxy.envoy.httpbin_headers)['user-agent'] }}"
"""

RETURN = r"""
_value:
  description: Header names (lower case) to values.
  type: dict
"""

from ansible.errors import AnsibleFilterError


def httpbin_headers(body):
    """Lower-cased header name -> value string, from httpbin or go-httpbin JSON."""
    try:
        headers = body["headers"]
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("httpbin_headers: the answer has no 'headers' object: %r" % (body,)) from exc
    result = {}
    for name, value in headers.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        result[str(name).lower()] = str(value)
    return result


class FilterModule:
    """tproxy.envoy httpbin filters."""

    def filters(self):
        return {"httpbin_headers": httpbin_headers}
