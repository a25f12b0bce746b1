"""The bench's modules are plain files in tools/bench/: make them importable by their names."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
