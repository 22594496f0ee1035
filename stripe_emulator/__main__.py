"""`python -m stripe_emulator --host 127.0.0.1 --port 12111 ...`"""
import argparse

from . import serve
from .limits import LimitsError


def main(argv=None):
    """Parse options and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator",
                                     description="In-memory Stripe Connect emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=None,
                        help="receives every event (platform and connected accounts)")
    parser.add_argument("--webhook-secret", default=None,
                        help="signing secret for --webhook-url (default whsec_emulator)")
    parser.add_argument("--available-after-days", type=int, default=2,
                        help="days before charged funds become available")
    parser.add_argument("--webhook-attempts", type=int, default=5,
                        help="delivery attempts per event and endpoint")
    parser.add_argument("--webhook-backoff", type=float, default=0.5,
                        help="first retry delay in seconds (doubles each attempt)")
    parser.add_argument("--settle-delay", type=float, default=1.0,
                        help="seconds between a capture and its balance transaction, transfer "
                             "and application fee (asynchronous capture)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="extra delay before every API request is answered (default 0)")
    parser.add_argument("--read-rate", type=int, default=None, metavar="N",
                        help="at most N read (GET) requests per second, as Stripe's rate "
                             "limiter (live mode: 100); 429 beyond it (default off)")
    parser.add_argument("--write-rate", type=int, default=None, metavar="N",
                        help="at most N write (POST, DELETE) requests per second (live mode: "
                             "100); 429 beyond it (default off)")
    args = parser.parse_args(argv)
    try:
        app, httpd = serve(args.host, args.port, webhook_url=args.webhook_url,
                           webhook_secret=args.webhook_secret,
                           available_after_days=args.available_after_days,
                           webhook_attempts=args.webhook_attempts,
                           webhook_backoff=args.webhook_backoff,
                           settle_delay=args.settle_delay, latency_seconds=args.latency,
                           read_per_second=args.read_rate, write_per_second=args.write_rate)
    except LimitsError as error:
        parser.error(str(error))
    host, port = httpd.server_address[:2]
    print("stripe emulator listening on http://%s:%d" % (host, port), flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        app.emu.stop()


if __name__ == "__main__":
    main()
