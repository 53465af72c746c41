"""Sign an example payload and post it to a running omniroute.

    python examples/send.py chat examples/chat.json
    python examples/send.py voice examples/voice.json --secret demo-voice-secret

Uses only the standard library. The default secret is the adapter's demo
secret from config/omniroute.yaml (``demo-<adapter>-secret``).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def signature(body: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("adapter", help="adapter name in the config, e.g. chat")
    p.add_argument("payload", type=Path, help="JSON file to send")
    p.add_argument("--secret", help="signing secret (default: demo-<adapter>-secret)")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="omniroute base URL")
    args = p.parse_args()

    body = args.payload.read_bytes()
    secret = args.secret or f"demo-{args.adapter}-secret"
    request = urllib.request.Request(
        f"{args.url.rstrip('/')}/v1/webhooks/{args.adapter}",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Omniroute-Signature": signature(body, secret, int(time.time())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.status, response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
