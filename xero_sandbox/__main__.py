"""Run the sandbox.

python -m xero_sandbox --port 8765 [--host 127.0.0.1] [--data FILE] [--seed demo] [--time-scale N]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from .seed import DEMO_CLIENT_ID, DEMO_NZ_TENANT_ID, DEMO_UK_TENANT_ID, SEEDS
from .server import Sandbox, SandboxHTTPServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xero_sandbox", description="Local Xero sandbox"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data", type=Path, help="JSON file to load state from and save it to")
    parser.add_argument("--seed", default="demo", choices=sorted(SEEDS))
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="10 => a minute passes in 6 s"
    )
    parser.add_argument(
        "--webhook-url",
        default=None,
        help="demo app webhook URL (default http://127.0.0.1:8000/xero/webhooks/; '' = none)",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        help="demo app redirect URI (repeatable; replaces the defaults)",
    )
    parser.add_argument("--auto-approve", action="store_true", help="skip the consent page")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

    sandbox = Sandbox(
        seed=args.seed,
        data_file=args.data,
        webhook_url=args.webhook_url,
        redirect_uris=args.redirect_uris,
    )
    sandbox.clock.set_scale(args.time_scale)
    if args.auto_approve:
        sandbox.state.settings["auto_approve"] = True
    server = SandboxHTTPServer((args.host, args.port), sandbox)
    url = f"http://{args.host}:{server.server_address[1]}"
    print(f"Xero sandbox on {url}  (seed={args.seed}, time-scale={args.time_scale})", flush=True)
    print(f"  XERO_API_BASE=XERO_IDENTITY_BASE=XERO_LOGIN_BASE={url}", flush=True)
    if args.seed == "demo":
        print(
            f"  client_id={DEMO_CLIENT_ID}  NZ tenant={DEMO_NZ_TENANT_ID}"
            f"  UK tenant={DEMO_UK_TENANT_ID}",
            flush=True,
        )
    print(f"  control API {url}/__sandbox__/   web UI {url}/__sandbox__/ui/", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sandbox.save()
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
