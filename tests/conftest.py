"""Shared by every test folder: exported (ONNX) models go to one folder per machine, named by their content.

Exporting EfficientNet-Lite0 takes seconds and calibrating its int8 model longer; the files depend only on
the weights and export options (retrieval.inference.export_key), so test runs and the app processes that
tests start (which inherit this environment) reuse them safely.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("REFIND_EXPORTS_DIR", str(Path(tempfile.gettempdir()) / "refind-test-exports"))
