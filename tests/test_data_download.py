"""download(): resume, restart, verification and error reporting, against a local HTTP server."""

import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scratchvae.data.download import download
from scratchvae.data.errors import DataError

PAYLOAD = bytes(range(256)) * 800  # 200 KiB, several read chunks


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at /<mode>/file with one of these behaviours:

    range: honours ``Range: bytes=N-``; norange: ignores it; drop: like range, but
    closes the connection half-way through the first response; missing: 404.
    """

    def do_GET(self) -> None:
        self.server.ranges.append(self.headers.get("Range"))
        mode = self.path.split("/")[1]
        if mode == "missing":
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range") and mode != "norange":
            start = int(re.fullmatch(r"bytes=(\d+)-", self.headers["Range"])[1])
            if start >= len(PAYLOAD):
                self.send_error(416)
                return
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop" and self.server.drops_left:
            self.server.drops_left -= 1
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1; ``server.ranges`` records each request's Range header."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.ranges, httpd.drops_left = [], 1
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_downloads_and_verifies(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert download(f"{server.url}/range/file", dest, len(PAYLOAD), digest, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "file.bin.part").exists()


def test_a_piped_download_draws_no_bar_but_says_what_it_fetches(server, tmp_path, capsys):
    url, dest = f"{server.url}/range/file", tmp_path / "file.bin"
    download(url, dest, progress=True)  # pytest's capture: not a terminal
    captured = capsys.readouterr()
    assert captured.err == f"downloading {url} to {dest}\n" and captured.out == ""
    download(url, tmp_path / "quiet.bin", progress=False)
    assert capsys.readouterr().err == ""


def test_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    download(f"{server.url}/range/file", dest, progress=False)
    assert server.ranges == ["bytes=1000-"]
    assert dest.read_bytes() == PAYLOAD


def test_restarts_when_the_server_ignores_range(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(b"x" * 1000)
    download(f"{server.url}/norange/file", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_a_dropped_connection_is_resumed_by_the_next_call(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="next try resumes") as error:
        download(f"{server.url}/drop/file", dest, progress=False)
    assert "\n" not in str(error.value) and str(dest) in str(error.value)
    part = tmp_path / "file.bin.part"
    assert part.stat().st_size == len(PAYLOAD) // 2 and not dest.exists()
    download(f"{server.url}/drop/file", dest, progress=False)
    assert server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert dest.read_bytes() == PAYLOAD


def test_an_unsatisfiable_range_starts_over(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(b"x" * (len(PAYLOAD) + 10))
    download(f"{server.url}/range/file", tmp_path / "file.bin", progress=False)
    assert server.ranges == [f"bytes={len(PAYLOAD) + 10}-", None]
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_a_complete_part_file_needs_no_request(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    download(f"{server.url}/range/file", tmp_path / "file.bin", expected_size=len(PAYLOAD), progress=False)
    assert server.ranges == []
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize("check", [{"expected_size": 5}, {"sha256": "0" * 64}])
def test_a_file_failing_its_checks_is_deleted(server, tmp_path, check):
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="was deleted"):
        download(f"{server.url}/range/file", dest, progress=False, **check)
    assert list(tmp_path.iterdir()) == []


def test_http_errors_become_data_errors(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{server.url}/missing/file", tmp_path / "file.bin", progress=False)


def test_an_unreachable_server_says_where_to_put_the_file(tmp_path):
    with socket.socket() as sock:  # find a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError) as error:
        download(f"http://127.0.0.1:{port}/file", dest, progress=False, timeout=5)
    message = str(error.value)
    assert "\n" not in message and f"put it at {dest}" in message
