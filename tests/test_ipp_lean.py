"""ipyparallel's serialization without its package ``__init__`` (kernel/worker/ipp_lean),
in a fresh interpreter: the lean start (no IPython, no numpy), then the whole package on
first use, and the canning map's classes once their modules are imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("ipyparallel")

PROBE = """
import json, sys
from ipytui.kernel.worker import ipp_lean
ipp_lean.install()
from ipyparallel.serialize import can, serialize_object, uncan, deserialize_object
can(None); uncan(None)
out = {"lean": not {"IPython", "ipyparallel.client", "numpy"} & set(sys.modules)}
out["round_trip"] = deserialize_object(serialize_object({"x": [1, 2]}))[0] == {"x": [1, 2]}
import ipyparallel as ipp
from ipyparallel import error
out["lean_after_import"] = "IPython" not in sys.modules and error.__name__ == "ipyparallel.error"
import numpy
ipp_lean.ready_to_can()
from ipyparallel.serialize.canning import CannedArray
out["array_canned"] = isinstance(can(numpy.arange(3)), CannedArray)
from ipyparallel.controller.dependency import dependent
ipp_lean.ready_to_can()
from ipyparallel.serialize.canning import can_map, CannedObject
out["dependent_canned"] = isinstance(can(dependent(len, len)), CannedObject)
out["whole"] = [ipp.Client.__name__, ipp.interactive.__name__, bool(ipp.__version__)]
try:
    ipp.no_such_name
except AttributeError as exc:
    out["missing"] = str(exc)
print(json.dumps(out))
"""


def test_lean_serialization_then_the_whole_package_on_first_use() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["lean"] and out["round_trip"] and out["lean_after_import"]
    assert out["array_canned"] and out["dependent_canned"]
    assert out["whole"] == ["Client", "interactive", True]
    assert out["missing"] == "module 'ipyparallel' has no attribute 'no_such_name'"
