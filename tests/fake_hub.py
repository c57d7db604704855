"""A Hugging Face hub on 127.0.0.1, serving repositories from memory, for tests that point
HF_ENDPOINT at it: huggingface_hub itself then downloads and fills a real cache, as it would from
a mirror. Only what hf_hub_download asks is answered: HEAD and GET on
``/{repo_id}/resolve/{revision}/{filename}``, with the headers the hub sends (commit, ETag,
size) and its error codes for a missing repository or file."""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[str] = []  # "HEAD /org/name/resolve/main/config.json", in order
        self.endpoint = ""
        self._server: ThreadingHTTPServer | None = None

    def add_folder(self, repo_id: str, folder: Path) -> None:
        """Serve every file of ``folder`` as repository ``repo_id``."""
        self.repos[repo_id] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                match = RESOLVE.match(unquote(urlsplit(self.path).path))
                files = hub.repos.get(match["repo"]) if match else None
                commit = hashlib.sha1((match["repo"] if match else "").encode()).hexdigest()
                if files is None:
                    return self._error("RepoNotFound", "Repository not found")
                assert match is not None
                data = files.get(match["file"])
                if data is None:
                    return self._error("EntryNotFound", "Entry not found", commit)
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _error(self, code: str, message: str, commit: str | None = None) -> None:
                text = f'{{"error": "{message}"}}'.encode()
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(text)

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
