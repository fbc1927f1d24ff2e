"""Mutation fuzz of every image-dataset reader: truncated or byte-flipped files of each format (IDX raw and gzip,
CIFAR batch and tar.gz, SmallNORB raw and gzip, COIL-20 zip, CelebA images and partition file, a folder of PNG,
JPEG, BMP, GIF, TIFF and WEBP). Every failure must be one DataError line; prints BUG for any other exception,
MULTILINE for a DataError of several lines, and BAD <count> at the end.

    python benchmarks/fuzz_datasets.py        # 540 cases, about 15 s
"""
import io, random, shutil, sys, tarfile, tempfile, traceback, zipfile
from pathlib import Path
import numpy as np
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_datasets import write_idx, write_cifar_batch, write_norb, imgs
from signals.datasets import load_images, split_shapes
from implicit_gon.errors import DataError
root = Path(tempfile.mkdtemp(prefix="fuzz-datasets-"))
rng = random.Random(0)
bad = 0
def attempt(name, d, split="test", **kw):
    global bad
    for fn in (lambda: split_shapes(name, d, cache_dir=str(root/"c"), **kw), lambda: load_images(name, split, d, cache_dir=str(root/"c"), progress=False, **kw)):
        try: fn()
        except DataError as e:
            if "\n" in str(e): print("MULTILINE", name, e); bad += 1
        except Exception as e:
            bad += 1; print("BUG", name, type(e).__name__, str(e)[:200]); traceback.print_exc(limit=3)
def mutate(data: bytes, k):
    b = bytearray(data)
    if k % 3 == 0: return bytes(b[:rng.randrange(len(b))])
    for _ in range(rng.randrange(1, 20)):
        i = rng.randrange(len(b)); b[i] = rng.randrange(256)
    if k % 3 == 2: b = b[:rng.randrange(len(b))]
    return bytes(b)
def case(name, files, split="test", n=40, **kw):
    base = {p: f.read_bytes() for p, f in files.items()}
    for k in range(n):
        d = root / f"{name}-{k}"; d.mkdir(parents=True)
        target = rng.choice(list(base))
        for p, data in base.items():
            (d / p).parent.mkdir(parents=True, exist_ok=True)
            (d / p).write_bytes(mutate(data, k) if p == target else data)
        attempt(name, d, split, **kw)
        shutil.rmtree(d)
src = root / "src"; src.mkdir()
write_idx(src / "t10k-images-idx3-ubyte.gz", imgs(30, 28, 28, 1)[..., 0])
write_idx(src / "raw" / "t10k-images-idx3-ubyte", imgs(30, 28, 28, 1)[..., 0], gz=False)
case("mnist", {"t10k-images-idx3-ubyte.gz": src / "t10k-images-idx3-ubyte.gz"})
case("mnist", {"t10k-images-idx3-ubyte": src / "raw" / "t10k-images-idx3-ubyte"})
write_cifar_batch(src / "test_batch", imgs(10, 32, 32, 3))
case("cifar10", {"test_batch": src / "test_batch"}, n=80)
tb = src / "cifar-10-python.tar.gz"
with tarfile.open(tb, "w:gz") as tf: tf.add(src / "test_batch", arcname="cifar-10-batches-py/test_batch")
case("cifar10", {"cifar-10-python.tar.gz": tb}, n=60)
pairs = np.random.default_rng(0).integers(0, 256, (4, 2, 96, 96), dtype=np.uint8)
write_norb(src / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz", pairs, gz=True)
write_norb(src / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat", pairs)
case("smallnorb", {"smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz": src / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz"})
case("smallnorb", {"smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat": src / "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat"})
cz = src / "coil-20-proc.zip"
with zipfile.ZipFile(cz, "w") as zf:
    for j in range(6):
        buf = io.BytesIO(); Image.fromarray(imgs(1, 32, 32, 1)[0, ..., 0]).save(buf, format="PNG"); zf.writestr(f"coil-20-proc/obj1__{j}.png", buf.getvalue())
case("coil20", {"coil-20-proc.zip": cz}, n=60)
cel = {}
for i in range(1, 5):
    p = src / "celeba" / "img_align_celeba" / f"{i:06d}.jpg"; p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(imgs(1, 218, 178, 3)[0]).save(p); cel[f"img_align_celeba/{i:06d}.jpg"] = p
(src / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n")
cel["list_eval_partition.txt"] = src / "celeba" / "list_eval_partition.txt"
case("celeba", cel, n=60)
fo = {}
for i, (fmt, ext) in enumerate([("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("GIF", "gif"), ("TIFF", "tif"), ("WEBP", "webp")]):
    p = src / "folder" / f"{i}.{ext}"; p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(imgs(1, 20, 20, 3)[0]).save(p, format=fmt); fo[p.name] = p
case("folder", fo, split="train", n=120)
shutil.rmtree(root, ignore_errors=True)
print("BAD", bad)
