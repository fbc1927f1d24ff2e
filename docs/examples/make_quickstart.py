"""Write docs/examples/quickstart.ipynb and execute it so its outputs are stored inline:
    .venv/bin/python docs/examples/make_quickstart.py
The tests execute the notebook again (tests/test_notebook.py)."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CELLS = [
    ("md", "# implicit-gon quickstart\n\nFit a small implicit GON on the 8x8 digits bundled with scikit-learn "
           "(offline, about a minute on a CPU), then encode held-out digits in one gradient step, render them "
           "at 64x64 (super-resolution) and interpolate between two of them."),
    ("code", "import tempfile\n\nimport torch\n\nfrom implicit_gon import fit, show, slerp\n"
             "from implicit_gon.config import resolve\nfrom signals import image_signal"),
    ("md", "## Fit\n\n`resolve` gives the digits config with a few settings changed (the same values "
           "`implicit-gon fit images --dataset digits --steps 400 --hidden 64 --lr 0.002 --set train.schedule=cosine` would use); `fit` writes a run "
           "directory like the command line does."),
    ("code", "cfg = resolve(\"images\", \"digits\", None, {\"train.steps\": 400, \"model.hidden\": 64, \"train.lr\": 0.002, "
             "\"train.schedule\": \"cosine\", \"train.val_every\": 100})\n"
             "run = tempfile.mkdtemp() + \"/digits\"\n"
             "gon = fit(image_signal(cfg.data, \"train\"), cfg, run, val_signal=image_signal(cfg.data, \"test\"))\n"
             "gon"),
    ("md", "## Encode\n\nEach held-out digit's latent is one gradient step from the origin; it does not depend "
           "on the batch size."),
    ("code", "test = image_signal(cfg.data, \"test\")\nz = gon.encode_images(test.images[:16])\nz.shape"),
    ("md", "## Super-resolve\n\nThe originals (8x8, enlarged), then the same latents rendered on a 64x64 grid."),
    ("code", "show(test.images[:16], nrow=16, scale=8)"),
    ("code", "show(gon.render(z, res=64), nrow=16)"),
    ("md", "## Interpolate\n\nSpherical interpolation between the latents of two digits, eight frames."),
    ("code", "path = slerp(z[0], z[1], torch.linspace(0, 1, 8))\nshow(gon.render(path, res=64), nrow=8)"),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(s) if kind == "md" else nbformat.v4.new_code_cell(s)
                for kind, s in CELLS]
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 600) -> nbformat.NotebookNode:
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    nb = execute(build(), here)
    nbformat.write(nb, here / "quickstart.ipynb")
