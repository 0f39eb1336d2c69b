"""A Hub-compatible upload endpoint on loopback for publish tests: the three calls `HfApi.create_repo` and
`HfApi.upload_folder` make (huggingface_hub 2.x), answered as the Hub answers them, with the token checked.

- POST /api/repos/create -> {"url"};
- POST /api/validate-yaml (the README's model-card metadata) -> 200, or 400 with the error when the front
  matter is not a YAML mapping;
- POST /api/models/{repo}/preupload/{revision} -> every file "regular" (so no LFS/Xet transfer: the bytes
  travel base64 in the commit, which the real client sends for files the Hub calls regular);
- POST /api/models/{repo}/commit/{revision} (NDJSON: a header line, then one line per file) -> {"commitUrl",
  "commitOid"}; the decoded files are kept per repo in `HubServer.repos`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

_PREUPLOAD = re.compile(r"^/api/models/([^/]+/[^/]+)/preupload/[^/?]+")
_COMMIT = re.compile(r"^/api/models/([^/]+/[^/]+)/commit/[^/?]+")


@dataclass
class HubServer:
    """What the endpoint received: repos created, files per repo, commit messages."""

    url: str
    token: str
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet test output
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                return self._reply(401, {"error": "Invalid credentials in Authorization header"})
            if self.path == "/api/repos/create":
                payload = json.loads(body)
                repo = f"{payload['organization']}/{payload['name']}"
                hub.repos.setdefault(repo, {})
                return self._reply(200, {"url": f"{hub.url}/{repo}"})
            if self.path == "/api/validate-yaml":
                return self._validate(json.loads(body)["content"])
            if match := _PREUPLOAD.match(self.path):
                if match.group(1) not in hub.repos:
                    return self._reply(404, {"error": "Repository not found"})
                files = json.loads(body)["files"]
                return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                    "oid": None} for f in files]})
            if match := _COMMIT.match(self.path):
                return self._commit(match.group(1), body)
            return self._reply(404, {"error": f"no route {self.path}"})

        def _validate(self, readme: str) -> None:
            _, sep, rest = readme.partition("---\n")
            try:
                metadata = yaml.safe_load(rest.partition("\n---")[0]) if sep else None
            except yaml.YAMLError as err:
                metadata = str(err)
            if not isinstance(metadata, dict):
                return self._reply(400, {"errors": [{"message": f"no YAML mapping in the front matter: {metadata!r}"}]})
            return self._reply(200, {"errors": [], "warnings": []})

        def _commit(self, repo: str, body: bytes) -> None:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header, files = lines[0], lines[1:]
            if header["key"] != "header" or any(f["key"] != "file" for f in files):
                return self._reply(400, {"error": "expected a header and regular files"})
            for item in files:
                hub.repos[repo][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            hub.commits.append(header["value"]["summary"])
            oid = hashlib.sha1(body).hexdigest()
            return self._reply(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid})

    return Handler


@contextmanager
def hub_server(token: str) -> Iterator[HubServer]:
    """The endpoint on 127.0.0.1 (a free port) until the block ends; point $HF_ENDPOINT at `.url`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    hub = HubServer(url=f"http://127.0.0.1:{server.server_address[1]}", token=token)
    server.RequestHandlerClass = _handler(hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
