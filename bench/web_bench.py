"""Micro-benchmarks of the per-contact work around the pipeline: the generic
adapter (verify, parse, reply) of one bench delivery, the webhook request and
answer the HTTP side builds, the router's dispatch of its path, the
``contact_routed`` log line written to a file, and the metrics a routed
contact counts. CPU time (``process_time``)
per call, in microseconds: the best of ``--repeat`` runs in a process, and of
``--rounds`` such processes per side (the sides take turns).

    python bench/web_bench.py                    # this checkout
    python bench/web_bench.py --before main      # and the code at main, side by side

No database and no network: each piece is called in process, as the service
calls it for a chat delivery of ``bench/load.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sources import source_of

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
BODY = (
    b'{"id":"a1b2c3-1234","customer":{"email":"c17.a1b2c3@example.com"},'
    b'"text":"where is my parcel","language":"en"}'
)


def _best(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Microseconds of CPU per call: the best of ``repeat`` runs of ``n`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


def measure(n: int, repeat: int, log_file: Path) -> dict[str, float]:
    """The pieces, measured with the code on ``sys.path`` (this checkout or another)."""
    # the log goes to a file, as in the load bench: stderr is that file from here on
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)

    import structlog
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from adapters.base import AdapterSpec, Parsed
    from adapters.generic import ChatAdapter, sign
    from router import logs
    from router.metrics import Metrics
    from router.models import Decision, Routed, WebhookReply, WebhookRequest, now_ms
    from router.settings import LogSettings, Settings
    from router.web import webhooks

    logs.configure(LogSettings(level="info", format="json"))
    log = structlog.get_logger("omniroute.route")
    adapter = ChatAdapter(AdapterSpec("chat", "chat", (SECRET,)))
    decision = Decision(queue="chat-q", priority=50, rule="default:chat", ruleset="r-1a2b3c")
    routed = [
        Routed(
            contact_id=uuid.uuid4(),
            customer_id=uuid.uuid4(),
            duplicate=False,
            decision=decision,
            external_id="a1b2c3-1234",
        )
    ]
    parsed = Parsed(contacts=[])

    def request() -> WebhookRequest:
        return WebhookRequest(
            method="POST",
            url="http://127.0.0.1:8080/v1/webhooks/chat",
            headers={
                "host": "127.0.0.1:8080",
                "content-type": "application/json",
                "content-length": str(len(BODY)),
                "x-omniroute-signature": sign(BODY, SECRET, int(time.time())),
            },
            query={},
            body=BODY,
            received_at=now_ms(),
        )

    incoming = request()
    out: dict[str, float] = {}
    out["adapter.verify"] = _best(lambda: adapter.verify(incoming), n, repeat)
    out["adapter.parse"] = _best(lambda: adapter.parse(incoming), n, repeat)
    out["adapter.reply"] = _best(lambda: adapter.reply(routed, parsed), n, repeat)

    def log_line() -> None:
        log.info(
            "contact_routed",
            contact_id="01938a6e-8f00-7000-8000-0123456789ab",
            customer_id="01938a6e-8f00-7000-8000-0123456789ac",
            known=True,
            degraded=False,
            adapter="chat",
            channel="chat",
            external_id="a1b2c3-1234",
            queue="chat-q",
            priority=50,
            rule="default:chat",
            ruleset="r-1a2b3c",
            duration_ms=1.23,
        )

    out["log contact_routed (file)"] = _best(log_line, n, repeat)

    metrics = Metrics()
    out["metrics.routed"] = _best(
        lambda: metrics.routed("chat", "chat-q", "chat", 0.0012), n, repeat
    )

    settings = Settings.model_validate({})
    headers = CIMultiDict(
        {
            "Host": "127.0.0.1:8080",
            "Content-Type": "application/json",
            "Content-Length": str(len(BODY)),
            "X-Omniroute-Signature": sign(BODY, SECRET, int(time.time())),
        }
    )
    mocked = make_mocked_request("POST", "/v1/webhooks/chat", headers=headers)

    def webhook_request() -> None:
        # what _webhook_request builds from the request besides the body it
        # awaits; the request's URL as for a new request (aiohttp keeps it)
        mocked._cache.pop("url", None)
        WebhookRequest(
            method=mocked.method,
            url=webhooks.public_url(mocked, settings),
            headers={k.lower(): v for k, v in mocked.headers.items()},
            query=dict(mocked.query),
            body=BODY,
            received_at=now_ms(),
        )

    out["webhook request"] = _best(webhook_request, n, repeat)
    reply = WebhookReply(status=200, body=b'{"contacts":[],"ignored":0}')
    out["webhook response"] = _best(lambda: webhooks._response(reply, "r-1a2b3c"), n, repeat)

    # the router's dispatch of a delivery's path to the webhooks' handler
    from router.settings import AdapterSettings
    from router.web import create_app

    app = create_app(
        Settings.model_validate(
            {"adapters": [AdapterSettings(name="chat", kind="chat", secrets=[SECRET])]}
        )
    )
    to_chat = make_mocked_request("POST", "/v1/webhooks/chat", headers=headers, app=app)

    def dispatch() -> None:
        try:
            app.router.resolve(to_chat).send(None)
        except StopIteration:
            pass

    out["url dispatch"] = _best(dispatch, n, repeat)
    out["total"] = sum(out.values())
    return out


def run(source: Path, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """The figures of the code in ``source``, from a process of its own."""
    log_file = workdir / f"{source.name}.log"
    cmd = [sys.executable, __file__, "--child", str(log_file)]
    cmd += ["-n", str(args.n), "--repeat", str(args.repeat)]
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(cmd, env=env, capture_output=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=5000, help="calls per run")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--rounds", type=int, default=3, help="runs of each side, taking turns")
    p.add_argument("--before", metavar="REV", help="also the code at this git revision")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
        print(json.dumps(measure(args.n, args.repeat, args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="omniroute-web-bench-") as tmp:
        workdir = Path(tmp)
        sources = {"this checkout": ROOT}
        if args.before:
            sources = {args.before: source_of(args.before, workdir), **sources}
        sides: dict[str, dict[str, float]] = {name: {} for name in sources}
        # the sides take turns, round by round (a shared machine's load moves):
        # each piece's best over the rounds
        for _ in range(args.rounds):
            for name, source in sources.items():
                for piece, us in run(source, args, workdir).items():
                    sides[name][piece] = min(us, sides[name].get(piece, float("inf")))
    names = list(sides)
    print(f"CPU us per call, best of {args.rounds} x {args.repeat} x {args.n} calls")
    print(f"{'piece':<28}" + "".join(f"{name:>16}" for name in names))
    for piece in next(iter(sides.values())):
        row = "".join(f"{sides[name].get(piece, float('nan')):>16.2f}" for name in names)
        print(f"{piece:<28}{row}")


if __name__ == "__main__":
    main()
