#!/usr/bin/env python3
"""Static file server with HTTP Range support, for the viewer and its browser tests.

    python3 scripts/serve-static.py DIR [--port N] [--no-range] [--count-bytes FILE] [--verbose]

Binds 127.0.0.1 only. --port 0 (the default) picks a free port. Once listening it
prints exactly one line to stdout, "serving DIR at http://127.0.0.1:PORT/", and
flushes it, so a test can read the URL.

* GET/HEAD with "Range: bytes=a-b" / "a-" / "-n" (one range) -> 206 + Content-Range;
  an unsatisfiable range (start beyond the end, last < first, "-0") -> 416 with
  "Content-Range: bytes */SIZE"; a header in another unit or with several ranges is
  ignored (200, whole file), as RFC 9110 allows.
* --no-range ignores Range headers (always 200 with the whole body) and sends
  "Accept-Ranges: none", to test clients' full-read fallback.
* --count-bytes FILE appends "path status bytes" per response (body bytes actually
  sent; 0 for HEAD), so a test can total what a lazy reader fetched.
* Python's http.server has no Range support, hence this file (stdlib only, 3.11).
"""

import argparse
import os
import posixpath
import re
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

EXTRA_TYPES = {
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".duckdb": "application/octet-stream",
    ".json": "application/json",
    ".html": "text/html",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".map": "application/json",
}

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **EXTRA_TYPES}
    protocol_version = "HTTP/1.1"  # keep-alive; every response sets Content-Length

    # set by main()
    no_range = False
    count_file = None
    count_lock = threading.Lock()
    verbose = False

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.verbose:
            super().log_message(format, *args)

    def _record(self, status, nbytes):
        if self.count_file is None:
            return
        path = urllib.parse.urlsplit(self.path).path
        with self.count_lock, open(self.count_file, "a", encoding="utf-8") as f:
            f.write(f"{path} {status} {nbytes}\n")

    def _fs_path(self):
        """Map the URL path to a file under the served directory: a path, None, or ('redirect', url)."""
        url = urllib.parse.urlsplit(self.path)
        path = posixpath.normpath(urllib.parse.unquote(url.path))
        parts = [p for p in path.split("/") if p and p not in (".", "..")]
        full = os.path.join(self.directory, *parts)
        if os.path.isdir(full):
            if not url.path.endswith("/"):
                return ("redirect", urllib.parse.urlunsplit(("", "", url.path + "/", url.query, "")))
            full = os.path.join(full, "index.html")
        return full if os.path.isfile(full) else None

    def _error(self, status, extra_headers=()):
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        for k, v in extra_headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            self.wfile.write(body)
            sent = len(body)
        self._record(status.value, sent)

    def _parse_range(self, size):
        """None = serve whole file; (start, end) inclusive; 'bad' = 416."""
        header = self.headers.get("Range")
        if self.no_range or header is None:
            return None
        m = RANGE_RE.match(header.strip())
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return None  # malformed or multi-range: ignore the header
        first, last = m.group(1), m.group(2)
        if first == "":  # suffix range: last N bytes
            n = int(last)
            if n == 0 or size == 0:
                return "bad"
            return (max(0, size - n), size - 1)
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
        if start >= size or (last != "" and int(last) < start):
            return "bad"
        return (start, end)

    def _serve(self, with_body):
        full = self._fs_path()
        if full is None:
            self._error(HTTPStatus.NOT_FOUND)
            return
        if isinstance(full, tuple):
            self._error(HTTPStatus.MOVED_PERMANENTLY, [("Location", full[1])])
            return
        try:
            f = open(full, "rb")
        except OSError:
            self._error(HTTPStatus.NOT_FOUND)
            return
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            rng = self._parse_range(size)
            if rng == "bad":
                self._error(
                    HTTPStatus(416),
                    [("Content-Range", f"bytes */{size}"), ("Accept-Ranges", "bytes")],
                )
                return
            if rng is None:
                status, start, length = HTTPStatus.OK, 0, size
            else:
                status, start, length = HTTPStatus.PARTIAL_CONTENT, rng[0], rng[1] - rng[0] + 1
            self.send_response(status)
            self.send_header("Content-Type", self.guess_type(full))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "none" if self.no_range else "bytes")
            if rng is not None:
                self.send_header("Content-Range", f"bytes {start}-{start + length - 1}/{size}")
            self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            sent = 0
            if with_body and length:
                f.seek(start)
                remaining = length
                try:
                    while remaining:
                        chunk = f.read(min(CHUNK, remaining))
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        remaining -= len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
            self._record(status.value, sent)

    def do_GET(self):  # noqa: N802 (stdlib naming)
        self._serve(with_body=True)

    def do_HEAD(self):  # noqa: N802
        self._serve(with_body=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Static file server with HTTP Range support (127.0.0.1 only).")
    ap.add_argument("directory", help="directory to serve")
    ap.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    ap.add_argument("--no-range", action="store_true", help="ignore Range headers (always 200, whole body)")
    ap.add_argument("--count-bytes", metavar="FILE", help="append 'path status bytes' per response to FILE")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args(argv)

    directory = os.path.abspath(args.directory)
    if not os.path.isdir(directory):
        ap.error(f"not a directory: {args.directory}")

    Handler.no_range = args.no_range
    Handler.count_file = os.path.abspath(args.count_bytes) if args.count_bytes else None
    Handler.verbose = args.verbose

    def handler(*a, **kw):
        return Handler(*a, directory=directory, **kw)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            # A browser that cancels a request (a page left mid-load) resets
            # the connection: not an error worth a traceback.
            if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                return
            super().handle_error(request, client_address)

    httpd = Server(("127.0.0.1", args.port), handler)
    port = httpd.server_address[1]
    print(f"serving {directory} at http://127.0.0.1:{port}/", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
