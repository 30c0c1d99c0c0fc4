"""A local HTTP server standing in for a download site: it serves a dict of URL path -> bytes (or a
file), which a test may change while it runs, and answers 404 for anything else."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serving(files: dict[str, bytes | Path]) -> Iterator[str]:
    """Serve `files` on 127.0.0.1; yields the base URL (no trailing slash)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            source = files.get(self.path)
            if source is None:
                self.send_error(404)
                return
            body = source if isinstance(source, bytes) else source.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
