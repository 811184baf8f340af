"""Tests for dataset downloads: a real HTTP server on 127.0.0.1 serving files the tests write."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from advnets.data import fetch as F
from advnets.data.cifar import load_cifar10
from advnets.data.download import RemoteFile, Source
from advnets.data.idx import load_idx_dataset
from advnets.errors import DataError

# --------------------------------------------------------------------------- a local server


class _Server:
    """Serves ``files[path] = bytes`` over HTTP; records every request path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    s = _Server()
    yield s
    s.close()


def _dead_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connecting is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- test data


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _idx(arr: np.ndarray) -> bytes:
    code = {1: 0x08}[arr.dtype.itemsize]
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _mnist_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    return {
        "train-images-idx3-ubyte.gz": gzip.compress(_idx(train), mtime=0),
        "train-labels-idx1-ubyte.gz": gzip.compress(_idx(np.arange(12, dtype=np.uint8) % 10), mtime=0),
        "t10k-images-idx3-ubyte.gz": gzip.compress(_idx(test), mtime=0),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(_idx(np.arange(4, dtype=np.uint8)), mtime=0),
    }


def _source(name: str, files: dict[str, bytes], mirrors: list[str], **kw) -> Source:
    return Source(
        name=name,
        subdir=name,
        files=tuple(RemoteFile(n, len(b), _sha(b)) for n, b in files.items()),
        mirrors=tuple(mirrors),
        **kw,
    )


BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def _batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
    return pickle.dumps(d, protocol=2)


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _cifar_members(n: int = 3) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    d = tarfile.TarInfo("cifar-10-batches-py")
    d.type = tarfile.DIRTYPE
    out: list[tuple[tarfile.TarInfo, bytes | None]] = [(d, None)]
    for i, b in enumerate(BATCHES):
        out.append((tarfile.TarInfo(f"cifar-10-batches-py/{b}"), _batch(n, i)))
    out.append((tarfile.TarInfo("cifar-10-batches-py/readme.html"), b"<p>tiny</p>"))
    return out


def _use_cifar(monkeypatch, server: _Server, archive: bytes) -> None:
    server.files["/cifar/cifar-10-python.tar.gz"] = archive
    src = _source(
        "cifar10",
        {"cifar-10-python.tar.gz": archive},
        [server.url("cifar")],
        extract_to="cifar-10-batches-py",
        expected=BATCHES,
    )
    monkeypatch.setitem(F.SOURCES, "cifar10", src)


def _all_entries(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# --------------------------------------------------------------------------- data_root


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(F.ENV_VAR, raising=False)
    assert F.data_root() == tmp_path / "home" / ".cache" / "advnets"
    monkeypatch.setenv(F.ENV_VAR, str(tmp_path / "env"))
    assert F.data_root() == tmp_path / "env"
    assert F.data_root(tmp_path / "cli") == tmp_path / "cli"
    assert F.data_root(str(tmp_path / "cli")) == tmp_path / "cli"
    monkeypatch.setenv(F.ENV_VAR, "~/from-env")
    assert F.data_root() == tmp_path / "home" / "from-env"
    monkeypatch.setenv(F.ENV_VAR, "")
    assert F.data_root() == tmp_path / "home" / ".cache" / "advnets"


# --------------------------------------------------------------------------- the pinned table


def test_pinned_sources_are_well_formed():
    assert [f.name for f in F.SOURCES["mnist"].files] == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert len(F.SOURCES["mnist"].mirrors) >= 2
    assert [f.name for f in F.SOURCES["cifar10"].files] == ["cifar-10-python.tar.gz"]
    for src in F.SOURCES.values():
        for f in src.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and f.sha256 == f.sha256.lower()
            assert f.size > 0
        assert all(m.startswith("https://") for m in src.mirrors)


# --------------------------------------------------------------------------- downloading


def test_fetch_downloads_verifies_and_loads(server, monkeypatch, tmp_path):
    files = _mnist_files()
    for n, b in files.items():
        server.files[f"/a/{n}"] = b
    monkeypatch.setitem(F.SOURCES, "mnist", _source("mnist", files, [server.url("a")]))
    out = F.fetch("mnist", tmp_path, timeout=5, progress=False)
    assert out == tmp_path / "mnist"
    for n, b in files.items():
        assert (out / n).read_bytes() == b
    assert _all_entries(out) == set(files)  # no temporary files left
    splits = load_idx_dataset(out, valid_size=2)
    assert splits["train"][0].shape == (10, 28, 28) and splits["test"][0].shape == (4, 28, 28)


def test_bad_checksum_on_first_mirror_falls_back(server, monkeypatch, tmp_path, capsys):
    files = _mnist_files()
    for n, b in files.items():
        bad = bytearray(b)
        bad[len(bad) // 2] ^= 0xFF  # same size, different bytes
        server.files[f"/bad/{n}"] = bytes(bad)
        server.files[f"/good/{n}"] = b
    src = _source("mnist", files, [server.url("bad"), server.url("good")])
    monkeypatch.setitem(F.SOURCES, "mnist", src)
    out = F.fetch("mnist", tmp_path, timeout=5, progress=True)
    for n, b in files.items():
        assert (out / n).read_bytes() == b
    assert [p.split("/")[1] for p in server.requests] == ["bad", "good"] * 4
    assert _all_entries(out) == set(files)
    assert "checksum OK" in capsys.readouterr().err


def test_explicit_mirrors_override_the_table(server, monkeypatch, tmp_path):
    files = _mnist_files()
    for n, b in files.items():
        server.files[f"/m/{n}"] = b
    # the table's own mirror answers 404 for everything
    monkeypatch.setitem(F.SOURCES, "mnist", _source("mnist", files, [server.url("nothing-here")]))
    F.fetch("mnist", tmp_path, mirrors=[server.url("m")], timeout=5, progress=False)
    assert all(p.startswith("/m/") for p in server.requests)
    assert F.dataset_status(tmp_path)[2]["present"] is True


def test_http_error_then_success(server, monkeypatch, tmp_path):
    files = _mnist_files()
    for n, b in files.items():
        server.files[f"/good/{n}"] = b
    src = _source("mnist", files, [server.url("missing"), server.url("good")])
    monkeypatch.setitem(F.SOURCES, "mnist", src)
    F.fetch("mnist", tmp_path, timeout=5, progress=False)
    assert all((tmp_path / "mnist" / n).read_bytes() == b for n, b in files.items())


def test_all_mirrors_corrupt_raises_with_hashes_and_leaves_nothing(server, monkeypatch, tmp_path):
    files = {"one.bin": b"the real bytes" * 100}
    wrong = {"a": b"the fake bytes" * 100, "b": b"X" * 1400}
    server.files["/a/one.bin"] = wrong["a"]
    server.files["/b/one.bin"] = wrong["b"]
    monkeypatch.setitem(F.SOURCES, "tiny", _source("tiny", files, [server.url("a"), server.url("b")]))
    with pytest.raises(DataError) as exc:
        F.fetch("tiny", tmp_path, timeout=5, progress=False)
    msg = str(exc.value)
    assert "one.bin" in msg and "checksum mismatch" in msg
    assert _sha(files["one.bin"]) in msg  # expected
    assert _sha(wrong["a"]) in msg and _sha(wrong["b"]) in msg  # actual, from each mirror
    assert server.url("a") in msg  # the by-hand instructions name the URLs
    assert _all_entries(tmp_path / "tiny") == set()  # no file in place and no temporary file


def test_wrong_size_is_rejected_before_writing_too_much(server, monkeypatch, tmp_path):
    real = b"0123456789" * 10
    server.files["/big/f.bin"] = real * 50  # Content-Length announces the wrong size
    monkeypatch.setitem(F.SOURCES, "tiny", _source("tiny", {"f.bin": real}, [server.url("big")]))
    with pytest.raises(DataError, match=r"announces 5000 bytes, expected 100"):
        F.fetch("tiny", tmp_path, timeout=5, progress=False)
    assert _all_entries(tmp_path / "tiny") == set()


def test_server_down_fails_fast_with_instructions(monkeypatch, tmp_path):
    files = _mnist_files()
    port = _dead_port()
    mirrors = [f"http://127.0.0.1:{port}/one/", f"http://127.0.0.1:{port}/two/"]
    monkeypatch.setitem(F.SOURCES, "mnist", _source("mnist", files, mirrors))
    t0 = time.monotonic()
    with pytest.raises(DataError) as exc:
        F.fetch("mnist", tmp_path, timeout=1.0, progress=False)
    assert time.monotonic() - t0 < 5
    msg = str(exc.value)
    assert "could not download train-images-idx3-ubyte.gz" in msg
    assert "by hand" in msg and mirrors[0] in msg and mirrors[1] in msg
    assert all(n in msg for n in files) and str(tmp_path / "mnist") in msg
    assert _all_entries(tmp_path / "mnist") == set()


def test_server_that_never_answers_times_out(monkeypatch, tmp_path):
    """A peer that accepts the connection but sends nothing: the read timeout ends it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes handshakes; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x/"
        monkeypatch.setitem(F.SOURCES, "tiny", _source("tiny", {"f.bin": b"abc"}, [url]))
        t0 = time.monotonic()
        with pytest.raises(DataError, match="by hand"):
            F.fetch("tiny", tmp_path, timeout=0.5, progress=False)
        assert time.monotonic() - t0 < 5
    assert _all_entries(tmp_path / "tiny") == set()


def test_present_files_are_skipped_and_bad_ones_replaced(server, monkeypatch, tmp_path):
    files = _mnist_files()
    for n, b in files.items():
        server.files[f"/a/{n}"] = b
    monkeypatch.setitem(F.SOURCES, "mnist", _source("mnist", files, [server.url("a")]))
    target = tmp_path / "mnist"
    target.mkdir()
    for n, b in files.items():
        (target / n).write_bytes(b)
    F.fetch("mnist", tmp_path, timeout=5, progress=False)
    assert server.requests == []  # nothing downloaded again
    (target / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    F.fetch("mnist", tmp_path, timeout=5, progress=False)
    assert server.requests == ["/a/t10k-labels-idx1-ubyte.gz"]
    assert (target / "t10k-labels-idx1-ubyte.gz").read_bytes() == files["t10k-labels-idx1-ubyte.gz"]


def test_fetch_rejects_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="unknown dataset; expected one of"):
        F.fetch("imagenet", tmp_path, progress=False)
    with pytest.raises(DataError, match="mirrors"):
        F.fetch("mnist", tmp_path, mirrors=[], progress=False)
    with pytest.raises(DataError, match="timeout"):
        F.fetch("mnist", tmp_path, mirrors=["http://127.0.0.1:9/"], timeout=0, progress=False)


# --------------------------------------------------------------------------- archives


def test_cifar_archive_is_fetched_and_unpacked(server, monkeypatch, tmp_path):
    archive = _tar(_cifar_members())
    _use_cifar(monkeypatch, server, archive)
    out = F.fetch("cifar10", tmp_path, timeout=5, progress=False)
    assert out == tmp_path / "cifar10"
    assert _all_entries(out) == {
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        "cifar-10-batches-py/readme.html",
        *(f"cifar-10-batches-py/{b}" for b in BATCHES),
    }
    splits = load_cifar10(out, valid_size=3)
    assert splits["train"][0].shape == (12, 3, 32, 32) and splits["test"][0].shape == (3, 3, 32, 32)
    # unpacked already: a second fetch asks the server for nothing
    n = len(server.requests)
    F.fetch("cifar10", tmp_path, timeout=5, progress=False)
    assert len(server.requests) == n


def _evil(kind: str) -> tuple[tarfile.TarInfo, bytes | None]:
    if kind == "symlink":
        t = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        t.type, t.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return t, None
    if kind == "symlink-dir":
        t = tarfile.TarInfo("cifar-10-batches-py/sub")
        t.type, t.linkname = tarfile.SYMTYPE, "../../.."
        return t, None
    if kind == "hardlink":
        t = tarfile.TarInfo("cifar-10-batches-py/hard")
        t.type, t.linkname = tarfile.LNKTYPE, "cifar-10-batches-py/test_batch"
        return t, None
    if kind == "device":
        t = tarfile.TarInfo("cifar-10-batches-py/dev")
        t.type, t.devmajor, t.devminor = tarfile.CHRTYPE, 1, 3
        return t, None
    if kind == "fifo":
        t = tarfile.TarInfo("cifar-10-batches-py/fifo")
        t.type = tarfile.FIFOTYPE
        return t, None
    if kind == "dotdot":
        return tarfile.TarInfo("../escape"), b"escaped"
    if kind == "dotdot-inside":
        return tarfile.TarInfo("cifar-10-batches-py/../../escape"), b"escaped"
    if kind == "absolute":
        return tarfile.TarInfo(f"/tmp/advnets-test-absolute-{id(kind)}"), b"escaped"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["symlink", "symlink-dir", "hardlink", "device", "fifo", "dotdot", "dotdot-inside", "absolute"]
)
@pytest.mark.parametrize("position", ["first", "last"])
def test_unsafe_archive_members_are_refused(server, monkeypatch, tmp_path, kind, position):
    root = tmp_path / "root"
    root.mkdir()
    members = _cifar_members(1)
    bad = _evil(kind)
    members = [bad, *members] if position == "first" else [*members, bad]
    _use_cifar(monkeypatch, server, _tar(members))
    with pytest.raises(DataError, match=r"refusing to unpack member") as exc:
        F.fetch("cifar10", root, timeout=5, progress=False)
    assert repr(bad[0].name) in str(exc.value)
    # only the verified archive remains: no (half-)unpacked folder, no temporary folder
    assert _all_entries(root) == {"cifar10", "cifar10/cifar-10-python.tar.gz"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]  # nothing written beside the root
    if kind == "absolute":
        assert not Path(bad[0].name).exists()
    assert F.dataset_status(root)[3]["present"] is False


def test_incomplete_archive_leaves_no_folder(server, monkeypatch, tmp_path):
    members = [m for m in _cifar_members(1) if not m[0].name.endswith("test_batch")]
    _use_cifar(monkeypatch, server, _tar(members))
    with pytest.raises(DataError, match="lacks test_batch"):
        F.fetch("cifar10", tmp_path, timeout=5, progress=False)
    assert _all_entries(tmp_path / "cifar10") == {"cifar-10-python.tar.gz"}


def test_corrupt_archive_is_a_data_error(server, monkeypatch, tmp_path):
    archive = _tar(_cifar_members(1))
    _use_cifar(monkeypatch, server, archive[: len(archive) // 2])
    with pytest.raises(DataError, match="cannot unpack"):
        F.fetch("cifar10", tmp_path, timeout=5, progress=False)
    assert _all_entries(tmp_path / "cifar10") == {"cifar-10-python.tar.gz"}


def test_stale_temporaries_are_cleaned(server, monkeypatch, tmp_path):
    files = {"f.bin": b"payload"}
    server.files["/a/f.bin"] = files["f.bin"]
    monkeypatch.setitem(F.SOURCES, "tiny", _source("tiny", files, [server.url("a")]))
    target = tmp_path / "tiny"
    (target / ".cifar-10-batches-py.abc.unpack" / "x").mkdir(parents=True)
    (target / ".f.bin.xyz.part").write_bytes(b"half")
    (target / ".f.bin.new.part").write_bytes(b"still being written by someone")
    old = time.time() - 2 * 3600
    os.utime(target / ".f.bin.xyz.part", (old, old))
    os.utime(target / ".cifar-10-batches-py.abc.unpack", (old, old))
    F.fetch("tiny", tmp_path, timeout=5, progress=False)
    assert _all_entries(target) == {"f.bin", ".f.bin.new.part"}


# --------------------------------------------------------------------------- status


def test_dataset_status_reports_presence(tmp_path):
    rows = F.dataset_status(tmp_path)
    by = {r["name"]: r for r in rows}
    assert list(by) == ["embedded", "embedded-digits", "mnist", "cifar10", "tfd", "folder"]
    assert by["embedded"]["present"] is True and by["embedded"]["size_bytes"] > 0
    assert by["embedded-digits"]["present"] is True
    assert by["mnist"]["present"] is False and by["mnist"]["size_bytes"] is None
    assert by["cifar10"]["present"] is False and by["tfd"]["present"] is False
    assert by["folder"]["present"] is None
    assert by["mnist"]["path"] == str(tmp_path / "mnist")
    assert by["mnist"]["splits"] == "50,000 / 10,000 / 10,000"
    assert by["cifar10"]["splits"] == "40,000 / 10,000 / 10,000"
    assert by["embedded"]["splits"] == "4,000 / 500 / 500"
    assert by["embedded-digits"]["splits"] == "1,439 / 179 / 179"
    assert by["mnist"]["get"] == "advnets data fetch mnist"
    assert "not public" in by["tfd"]["get"]

    mnist = tmp_path / "mnist"
    mnist.mkdir()
    names = list(_mnist_files())
    for n in names[:3]:
        (mnist / n).write_bytes(b"x" * 10)
    assert F.dataset_status(tmp_path)[2]["present"] is False  # three of four files
    (mnist / "t10k-labels-idx1-ubyte").write_bytes(b"y" * 5)  # uncompressed counts too
    row = F.dataset_status(tmp_path)[2]
    assert row["present"] is True and row["size_bytes"] == 35

    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "tfd").mkdir()
    (tmp_path / "tfd" / F.TFD_FILE).write_bytes(b"m" * 7)
    by = {r["name"]: r for r in F.dataset_status(tmp_path)}
    assert by["cifar10"]["present"] is True and by["tfd"]["present"] is True
    assert by["tfd"]["size_bytes"] == 7


def test_format_status_table_is_aligned(tmp_path):
    rows = F.dataset_status(tmp_path)
    text = F.format_status_table(rows)
    table, *blocks = text.split("\n\n")
    lines = table.splitlines()
    assert len(lines) == 7 and lines[0].startswith("DATASET")
    col = lines[0].index("PRESENT")
    splits = lines[0].index("TRAIN / VALID / TEST")
    names = ["embedded", "embedded-digits", "mnist", "cifar10", "tfd", "folder"]
    for line, name in zip(lines[1:], names, strict=True):
        assert line.startswith(name)
        assert line[col - 1] == " " and line[col] != " "
        assert line[splits - 1] == " " and line[splits] != " "
    assert max(len(line) for line in text.splitlines()) < 120  # readable in a terminal, no 300-column rows
    # Then one block per dataset: its name, then where it lives, how to get it and its licence.
    assert [b.splitlines()[0] for b in blocks] == names
    mnist = blocks[names.index("mnist")]
    assert f"  where    {tmp_path / 'mnist'}" in mnist.splitlines()
    assert "advnets data fetch mnist" in text and "Krizhevsky" in text


# --------------------------------------------------------------------------- shared folders (issue 26)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_fetched_files_get_the_mode_of_an_ordinary_new_file_under_the_umask(server, monkeypatch, tmp_path, mask):
    """`advnets data fetch` into a shared $ADVNETS_DATA: 0644 under umask 022 (others can read the data), 0600
    under 077; a download streamed to a mkstemp file would be 0600 whatever the umask. Also the unpacked CIFAR
    folder's files, which the archive's own modes do not decide."""
    from conftest import cli_in_process

    files = _mnist_files()
    for n, b in files.items():
        server.files[f"/a/{n}"] = b
    monkeypatch.setitem(F.SOURCES, "mnist", _source("mnist", files, [server.url("nothing-here")]))
    _use_cifar(monkeypatch, server, _tar(_cifar_members()))
    before = os.umask(mask)
    try:
        code, _, err = cli_in_process(
            "data", "fetch", "mnist", "--data-dir", tmp_path, "--mirror", server.url("a"), "--quiet"
        )
        assert code == 0, err
        F.fetch("cifar10", tmp_path, timeout=5, progress=False)
    finally:
        os.umask(before)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in (tmp_path / "mnist").iterdir()} == set(files)
    assert len(written) == len(files) + 1 + len(BATCHES) + 1  # MNIST, the CIFAR archive, its batches, readme
    assert {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in written} == {
        p.relative_to(tmp_path).as_posix(): oct(0o666 & ~mask) for p in written
    }


def test_a_full_disk_during_a_fetch_is_one_line_naming_the_file_and_no_mirror_is_blamed(server, monkeypatch, tmp_path):
    """A full (or read-only) data folder is not a network failure: the next mirror would not help."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    files = _mnist_files()
    for n, b in files.items():
        server.files[f"/a/{n}"] = b
        server.files[f"/b/{n}"] = b
    monkeypatch.setitem(F.SOURCES, "mnist", _source("mnist", files, [server.url("a"), server.url("b")]))
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(DataError) as info:
            F.fetch("mnist", disk, timeout=5, progress=False)
        text = str(info.value)
        assert "\n" not in text and text.startswith(f"could not write {disk / 'mnist'}/") and "No space left" in text
        assert "free some space" in text
        assert [p.split("/")[1] for p in server.requests if p.startswith("/b/")] == []  # no other mirror tried
        assert [p.name for p in (disk / "mnist").iterdir() if p.name.endswith(".part")] == []
    finally:
        subprocess.run(["umount", "-l", str(disk)])
