"""A stand-in for llama-server in the real backend's fast tests: the flags the emulator passes,
`/health`, and `/v1/chat/completions` answering with what it received (so a test sees the body,
the adapter index and the key the proxy sent). FAKE_LLAMA_MODE=crash exits at once with an
error on its log; FAKE_LLAMA_LOAD_S keeps `/health` at 503 for that long, as a loading model
does."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--api-key-file", required=True)
    parser.add_argument("--lora", action="append", default=[])
    args, rest = parser.parse_known_args()
    if os.environ.get("FAKE_LLAMA_MODE") == "crash":
        print("error: failed to load model 'broken.gguf'", flush=True)
        sys.exit(3)
    with open(args.api_key_file) as key_file:
        key = key_file.read().strip()
    loaded_at = time.monotonic() + float(os.environ.get("FAKE_LLAMA_LOAD_S", "0"))
    print(f"fake llama-server on {args.port}, loras {args.lora}, other flags {rest}", flush=True)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *values: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                ok = time.monotonic() >= loaded_at
                status = 200 if ok else 503
                self._send(
                    status,
                    json.dumps({"status": "ok" if ok else "loading"}).encode(),
                    "application/json",
                )
            else:
                self._send(404, b"{}", "application/json")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.headers.get("Authorization") != f"Bearer {key}":
                self._send(401, b'{"error": {"message": "Invalid API Key"}}', "application/json")
                return
            received = {
                "lora": body.get("lora"),
                "tools": len(body.get("tools") or []),
                "loras": args.lora,
            }
            message = {"role": "assistant", "content": json.dumps(received)}
            if not body.get("stream"):
                answer = {
                    "object": "chat.completion",
                    "model": args.alias,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                }
                self._send(200, json.dumps(answer).encode(), "application/json")
                return
            chunks = [
                {
                    "object": "chat.completion.chunk",
                    "model": args.alias,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": message["content"]}}
                    ],
                },
                {
                    "object": "chat.completion.chunk",
                    "model": args.alias,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                },
            ]
            stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            self._send(200, stream.encode(), "text/event-stream")

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
