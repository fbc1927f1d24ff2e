"""`make test-data`: the real test files (what ../shared/data holds) fetched from the datasets' published sources
into test-data/, each checked against tests/data/SHA256SUMS (the SHA-256 of every file of the shared folder).

Where the published original is not byte-identical to the shared copy, the entry says how it differs and what is
checked instead (the decompressed content's SHA-256 for MNIST's re-packaged gzip files and the Fashion-MNIST
subset). Some files have no stable public URL or come only inside a large archive (CIFAR-10 170 MB, CelebA 1.4 GB,
COIL-20 downsampled by a third party, CMU ARCTIC re-normalised): they are listed with their source, and
`--copy-from DIR` takes them from another copy of the folder, checked against the same sums.

    python tests/testdata.py [--dest test-data] [--copy-from DIR] [--base-url URL]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from signals.datasets.download import download  # noqa: E402  (one checked, size-bounded download function)
from implicit_gon.errors import GONError  # noqa: E402

SUMS = Path(__file__).with_name("data") / "SHA256SUMS"
GITHUB = "https://raw.githubusercontent.com/"
MESHES = GITHUB + "alecjacobson/common-3d-test-models/8a4f8642acaf43f9cd7b67858a1502e1055ef202/data/"
LIBROSA = GITHUB + "librosa/data/450cdd8a002c98e7bdbfebb309fc1ed024001f77/audio/"
SIREN = GITHUB + "vsitzmann/siren/4df34baee3f0f9c8f351630992c1fe1f69114b5f/data/"
MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


@dataclass(frozen=True)
class Entry:
    path: str  # where it lies in the folder, as in ../shared/data
    url: str  # the published original
    checksum: str  # the original's, as published ("md5:..."), or "" when it is the shared file (SHA256SUMS)
    size: int  # the original's bytes: the download's limit
    keep: int = 0  # IDX files: keep only the first `keep` items (the shared Fashion-MNIST subset)
    content: str = ""  # SHA-256 of the decompressed file, checked where the gzip bytes differ from the shared copy


FETCHED = [
    *(Entry(f"meshes/{m}.obj", MESHES + f"{m}.obj", "", s) for m, s in
      (("cow", 180_177), ("fandisk", 379_559), ("spot", 330_624), ("stanford-bunny", 2_408_417),
       ("teapot", 210_614))),
    *(Entry(f"audio/{a}", LIBROSA + a, "", s) for a, s in
      (("198-209-0000.ogg", 74_044), ("456440__inspectorj__bird-whistling-robin-single-13.ogg", 15_629),
       ("sorohanro_-_solo-trumpet-06.ogg", 27_019))),
    Entry("audio/gt_bach.wav", SIREN + "gt_bach.wav", "", 1_232_886),
    # the shared copies are a mirror's re-packaging (a 2017 gzip timestamp): the IDX content is the same
    Entry("mnist/t10k-images-idx3-ubyte.gz", MNIST + "t10k-images-idx3-ubyte.gz",
          "md5:9fb629c4189551a2d022fa330f9573f3", 1_648_877,
          content="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    Entry("mnist/t10k-labels-idx1-ubyte.gz", MNIST + "t10k-labels-idx1-ubyte.gz",
          "md5:ec29112dd5afa0611ce80d1b7f02629c", 4_542,
          content="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    Entry("fashion-mnist/t10k-labels-idx1-ubyte.gz", FASHION + "t10k-labels-idx1-ubyte.gz",
          "md5:bb300cfdad3c16e7a12a480ee83cd310", 5_148),
    # the shared file holds the first 4,443 images of the full test set (4.4 MB), rewritten as an IDX file
    Entry("fashion-mnist/t10k-images-idx3-ubyte-first4443.gz", FASHION + "t10k-images-idx3-ubyte.gz",
          "md5:bef4ecab320f06d8554ea6380940ec79", 4_422_102, keep=4443,
          content="ba44552f7510af62d58da7a299189cbc15109114a525cdc47453585e5cfd24ec"),
]

BY_HAND = {  # folder: (published source, why it is not fetched here)
    "cifar-10-batches-py/": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (md5 c58f30108f718f92721af3b95e74349a)",
                             "test_batch_first78 is the first 78 rows of test_batch, re-pickled, from a 170 MB archive"),
    "celeba/": ("CelebA img_align_celeba.zip (Google Drive, 1.4 GB; no stable URL)", "000001-000032.jpg, unchanged"),
    "coil-20-32x32/": ("https://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/coil-20/coil-20-proc.zip",
                       "a third party's 32x32 downsample of poses 0-49 of the 128x128 originals"),
    "audio/cmu_arctic": ("http://festvox.org/cmu_arctic/packed/ (cmu_us_aew_arctic, cmu_us_axb_arctic)",
                         "the copies are amplitude-normalised to peak 0.65, not the corpus files"),
}


def sums() -> dict[str, str]:
    """path -> SHA-256 of every file of the shared folder."""
    return {p: h for h, p in (line.split(None, 1) for line in SUMS.read_text().splitlines() if line.strip())}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def first_items(raw: bytes, keep: int) -> bytes:
    """An IDX file cut to its first `keep` items: the count in the header, then the items' bytes."""
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    item = 1
    for d in dims[1:]:
        item *= d
    head = raw[:4] + keep.to_bytes(4, "big") + raw[8:4 + 4 * ndim]
    return head + raw[4 + 4 * ndim:4 + 4 * ndim + keep * item]


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def verified(dest: Path, e: Entry, known: dict[str, str]) -> bool:
    """Whether dest already holds this entry's file: the shared copy's bytes, or its decompressed content."""
    p = dest / e.path
    if not p.is_file():
        return False
    data = p.read_bytes()
    if sha256(data) == known[e.path]:
        return True
    return bool(e.content) and sha256(gzip.decompress(data)) == e.content


def fetch(dest: Path, e: Entry, known: dict[str, str], base_url: str | None = None) -> None:
    """Download one entry's original (checked against its published checksum, bounded by its size) and derive the
    test file from it where the two differ; a content that does not match is a one-line GONError."""
    folder = e.path.rsplit("/", 1)[0]  # a mirror keeps the folders, with the originals' names
    url = f"{base_url.rstrip('/')}/{folder}/{e.url.rsplit('/', 1)[1]}" if base_url else e.url
    if not e.checksum:  # the shared file is the original
        download(url, dest / e.path, "sha256:" + known[e.path], progress=False, size=e.size)
        return
    original = download(url, dest / ".originals" / e.path, e.checksum, progress=False, size=e.size)
    raw = gzip.decompress(original.read_bytes())
    content = first_items(raw, e.keep) if e.keep else raw
    if sha256(content) != e.content:
        raise GONError(f"{url}: its content is not the test set's ({e.path}); the source changed")
    write_atomic(dest / e.path, gzip.compress(content, mtime=0) if e.keep else original.read_bytes())


def copy_from(src: Path, dest: Path, known: dict[str, str]) -> int:
    """Copy from another copy of the folder every file that is missing here and matches SHA256SUMS."""
    n = 0
    for rel, digest in known.items():
        s, d = src / rel, dest / rel
        if not d.is_file() and s.is_file() and sha256(s.read_bytes()) == digest:
            write_atomic(d, s.read_bytes())
            n += 1
    return n


def missing(dest: Path, known: dict[str, str]) -> list[str]:
    fetched = {e.path for e in FETCHED}
    return [p for p in known if p not in fetched and not (dest / p).is_file()]


def write_sources(dest: Path) -> None:
    lines = ["# Test data fetched by `make test-data` (tests/testdata.py)", "",
             "Checked against tests/data/SHA256SUMS, the SHA-256 of every file of the project's shared copy.", ""]
    lines += [f"- `{e.path}`: {e.url}" + (f" ({e.checksum})" if e.checksum else "") for e in FETCHED]
    lines += ["", "Not fetched (copy them with --copy-from DIR):", ""]
    lines += [f"- `{k}`: {src}; {why}" for k, (src, why) in BY_HAND.items()]
    write_atomic(dest / "SOURCES.md", ("\n".join(lines) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=REPO / "test-data")
    ap.add_argument("--copy-from", type=Path, help="another copy of the folder (e.g. ../shared/data)")
    ap.add_argument("--base-url", help="fetch every file from this one URL prefix instead (a local mirror)")
    args = ap.parse_args(argv)
    known = sums()
    try:
        for e in FETCHED:
            if not verified(args.dest, e, known):
                print(f"fetching {e.path}", file=sys.stderr)
                fetch(args.dest, e, known, args.base_url)
    except GONError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.copy_from:
        print(f"copied {copy_from(args.copy_from, args.dest, known)} files from {args.copy_from}", file=sys.stderr)
    write_sources(args.dest)
    left = missing(args.dest, known)
    if left:
        print(f"{len(FETCHED)} files fetched into {args.dest}; {len(left)} have no stable public source and need "
              f"--copy-from DIR (see {args.dest / 'SOURCES.md'})", file=sys.stderr)
        return 1
    print(f"test data complete in {args.dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
