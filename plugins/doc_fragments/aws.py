# -*- coding: utf-8 -*-
# Copyright: tproxy.envoy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection's EC2 modules share in their documentation: their module_defaults groups."""

from __future__ import annotations


class ModuleDocFragment:
    # The action groups of meta/runtime.yml that hold every EC2 module of the collection.
    DOCUMENTATION = r"""
attributes:
  action_group:
    description:
      - Use C(group/tproxy.envoy.tproxy) in C(module_defaults) to set defaults for this module.
      - Use C(group/tproxy.envoy.aws) to set the AWS options (region, credentials, endpoint) once for this module and
        every module of C(amazon.aws.aws).
    support: full
    membership:
      - tproxy.envoy.tproxy
      - tproxy.envoy.aws
"""
