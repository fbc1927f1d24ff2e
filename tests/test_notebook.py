"""The example notebook runs: docs/examples/quickstart.ipynb executed with nbclient (fit, encode, super-resolve,
interpolate), every picture shown inline, and the stored copy in step with its builder."""
import sys

import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.xdist_group("notebook")
sys.path.insert(0, str(REPO / "docs" / "examples"))
import make_quickstart  # noqa: E402

NOTEBOOK = REPO / "docs" / "examples" / "quickstart.ipynb"


def test_the_stored_notebook_is_the_builders():
    stored = [c.source for c in nbformat.read(NOTEBOOK, 4).cells]
    assert stored == [c.source for c in make_quickstart.build().cells]  # run make_quickstart.py after editing it


def test_the_notebook_executes_and_shows_pictures(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # its run directory goes under pytest's tmp dir
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = make_quickstart.execute(nbformat.read(NOTEBOOK, 4), tmp_path)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 3  # originals, 64x64 renders, interpolation
    plain = [o for o in outputs if o.output_type == "stream" and "step " in o.text]
    assert not plain  # training shows a tqdm bar in a notebook, not a line every few steps
