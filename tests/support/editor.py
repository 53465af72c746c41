"""A YAML language server for the editor tests: the one VS Code's YAML extension
runs (``yaml-language-server``, pinned in ``editor/package.json``), installed
with ``npm ci`` and driven over LSP on its standard input and output.

:func:`install` installs it when the lock file changed (or skips when Node.js is
not there; ``.ci/run`` makes that a failure) and :class:`LanguageServer` speaks
enough of LSP to open documents, read the diagnostics the server publishes and
ask for completions.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EDITOR = Path(__file__).resolve().parents[1] / "rules" / "editor"
SERVER = EDITOR / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"


def install() -> Path:
    """The server's entry point, installed by ``npm ci`` unless installed from this very
    lock file already (``node_modules/.lock-sha256`` says which)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "Node.js and npm are needed to run the YAML language server (not on PATH)"
        if os.environ.get("OMNIROUTE_EDITOR_TESTS") == "required":  # set by .ci/run
            pytest.fail(reason)
        pytest.skip(reason)
    lock = hashlib.sha256((EDITOR / "package-lock.json").read_bytes()).hexdigest()
    stamp = EDITOR / "node_modules" / ".lock-sha256"
    if not SERVER.is_file() or not stamp.is_file() or stamp.read_text() != lock:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=EDITOR,
            check=True,
            timeout=600,
        )
        stamp.write_text(lock)
    return SERVER


@dataclass(frozen=True)
class Diagnostic:
    """One published diagnostic: 0-based range, message and the text it covers."""

    line: int
    col: int
    end_line: int
    end_col: int
    message: str
    covered: str

    def __str__(self) -> str:
        return f"{self.line + 1}:{self.col + 1}: {self.message} [{self.covered!r}]"


def _covered(text: str, start: dict[str, int], end: dict[str, int]) -> str:
    lines = text.split("\n")
    if start["line"] == end["line"]:
        return lines[start["line"]][start["character"] : end["character"]]
    head = lines[start["line"]][start["character"] :]
    body = lines[start["line"] + 1 : end["line"]]
    tail = lines[end["line"]][: end["character"]] if end["line"] < len(lines) else ""
    return "\n".join([head, *body, tail])


class LanguageServer:
    """An LSP client for one server process (JSON-RPC over stdio)."""

    def __init__(self, server: Path, root: Path, settings: dict[str, Any]) -> None:
        self.root = root
        self.settings = settings
        self.texts: dict[str, str] = {}
        self._next_id = 0
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._responses: dict[int, dict[str, Any]] = {}
        self._diagnostics: dict[str, list[dict[str, Any]]] = {}
        self._versions: dict[str, int] = {}
        self._process = subprocess.Popen(
            [shutil.which("node") or "node", str(server), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=root,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {
                    "textDocument": {
                        "publishDiagnostics": {"relatedInformation": False},
                        "completion": {"completionItem": {"snippetSupport": True}},
                    },
                    "workspace": {"configuration": True, "workspaceFolders": True},
                },
            },
        )
        self.notify("initialized", {})
        self._configured = False
        self.notify("workspace/didChangeConfiguration", {"settings": settings})
        deadline = time.monotonic() + 60
        while not self._configured:  # the server asks for its settings, then applies them
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not ask for its settings")
            self._pump(deadline - time.monotonic())

    # -- the wire ---------------------------------------------------------------

    def _read(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            self._messages.put(json.loads(stream.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any], timeout: float = 60) -> Any:
        self._next_id += 1
        ident = self._next_id
        self._send({"id": ident, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while ident not in self._responses:
            self._pump(deadline - time.monotonic())
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
        answer = self._responses.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result")

    def _pump(self, timeout: float) -> bool:
        """Handle one incoming message; False when none came within ``timeout``."""
        try:
            message = self._messages.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            return False
        if "method" in message and "id" in message:  # a request from the server
            result: Any = None
            if message["method"] == "workspace/configuration":
                # the server pulls its settings, one answer per section asked for
                items = message["params"]["items"]
                result = [self.settings.get(item.get("section", ""), None) for item in items]
                self._configured = True
            self._send({"id": message["id"], "result": result})
        elif "method" in message:
            if message["method"] == "textDocument/publishDiagnostics":
                params = message["params"]
                self._diagnostics[params["uri"]] = params["diagnostics"]
        else:
            self._responses[message["id"]] = message
        return True

    # -- documents ----------------------------------------------------------------

    def open(self, relative: str, text: str) -> str:
        """Open ``text`` as the document ``relative`` to the workspace root; its URI."""
        uri = (self.root / relative).as_uri()
        self.texts[uri] = text
        self._diagnostics.pop(uri, None)
        self._versions[uri] = self._versions.get(uri, 0) + 1
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "yaml",
                    "version": self._versions[uri],
                    "text": text,
                }
            },
        )
        return uri

    def close(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def diagnostics(
        self, uris: list[str], *, timeout: float = 60, quiet: float = 1.0
    ) -> dict[str, list[Diagnostic]]:
        """The diagnostics of every document in ``uris`` once the server has published
        for all of them and then been quiet for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while not all(uri in self._diagnostics for uri in uris):
            if time.monotonic() > deadline:
                missing = [u for u in uris if u not in self._diagnostics]
                raise TimeoutError(f"no diagnostics for {missing}")
            self._pump(deadline - time.monotonic())
        while self._pump(quiet):
            pass
        return {
            uri: [
                Diagnostic(
                    d["range"]["start"]["line"],
                    d["range"]["start"]["character"],
                    d["range"]["end"]["line"],
                    d["range"]["end"]["character"],
                    d["message"],
                    _covered(self.texts[uri], d["range"]["start"], d["range"]["end"]),
                )
                for d in self._diagnostics[uri]
            ]
            for uri in uris
        }

    def completion(self, uri: str, line: int, character: int) -> list[dict[str, Any]]:
        """The completion items at a 0-based position."""
        result = self.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        if isinstance(result, dict):
            return list(result.get("items", []))
        return list(result or [])

    def hover(self, uri: str, line: int, character: int) -> str:
        """The hover text at a 0-based position ("" when none)."""
        result = self.request(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        if not result:
            return ""
        contents = result["contents"]
        return str(contents["value"] if isinstance(contents, dict) else contents)

    def shutdown(self) -> None:
        try:
            self.request("shutdown", {}, timeout=10)
            self.notify("exit", {})
            self._process.wait(timeout=10)
        except (TimeoutError, OSError, RuntimeError):
            self._process.kill()
            self._process.wait()
        finally:
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()


def running(server: Path, root: Path, settings: dict[str, Any]) -> Iterator[LanguageServer]:
    client = LanguageServer(server, root, settings)
    try:
        yield client
    finally:
        client.shutdown()
