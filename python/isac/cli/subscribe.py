"""isac-subscribe: print what isac-sim publishes over ZeroMQ.

    isac-subscribe tcp://127.0.0.1:5556            # JSON (isac-sim --zmq-json), needs only pyzmq
    isac-subscribe --pmt tcp://127.0.0.1:5555      # serialized PMTs (isac-sim --zmq), needs GNU Radio's pmt

Runs until interrupted, or for --count messages / --timeout seconds without a message."""
from __future__ import annotations

import argparse
import json
import sys

import zmq


def _line(topic: str, body: dict) -> str:
    if "p_md" in body:
        return (f"[metrics] {body.get('frames')} frames: p_md={body['p_md']} p_fa={body['p_fa']} "
                f"GOSPA={body['gospa']} SER={body['ser']}")
    angles = body.get("angle_deg", [])
    ranges = body.get("range_m", [])
    pairs = "  ".join(f"({a:.2f} deg, {r:.1f} m)" for a, r in zip(angles, ranges)) or "-"
    return f"[{topic}] frame {body.get('frame')}: {body.get('count')} targets  {pairs}"


def _receive(sock, pmt_mode: bool) -> tuple[str, dict]:
    if pmt_mode:
        import pmt

        body = pmt.to_python(pmt.deserialize_str(sock.recv()))
        topic = str(body.pop("topic", "detections"))
        return topic, {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in body.items()}
    topic, payload = sock.recv_multipart()
    return topic.decode(), json.loads(payload)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="isac-subscribe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoint", help="ZeroMQ endpoint isac-sim publishes on, e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--pmt", action="store_true", help="the publisher sends serialized PMTs (isac-sim --zmq)")
    parser.add_argument("--topic", action="append", choices=("detections", "truth", "metrics"),
                        help="JSON topics to print (repeatable; default all)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many messages (0 = never)")
    parser.add_argument("--timeout", type=float, default=0.0, help="stop after this many seconds without a message")
    parser.add_argument("--raw", action="store_true", help="print each message as one JSON line")
    args = parser.parse_args(argv)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.connect(args.endpoint)
    if args.pmt or not args.topic:  # PMT messages have no topic frame: filter after decoding
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    else:
        for t in args.topic:
            sock.setsockopt(zmq.SUBSCRIBE, t.encode())
    if args.timeout > 0:
        sock.setsockopt(zmq.RCVTIMEO, int(args.timeout * 1000))
    received = 0
    try:
        while not args.count or received < args.count:
            try:
                topic, body = _receive(sock, args.pmt)
            except zmq.Again:
                break
            if args.topic and topic not in args.topic:
                continue
            received += 1
            print(json.dumps({"topic": topic, **body}) if args.raw else _line(topic, body), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
