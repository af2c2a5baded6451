"""isac-subscribe: print what isac-sim publishes over ZeroMQ.

    isac-subscribe tcp://127.0.0.1:5556            # JSON (isac-sim --zmq-json), needs only pyzmq
    isac-subscribe --pmt tcp://127.0.0.1:5555      # serialized PMTs (isac-sim --zmq), needs GNU Radio's pmt

Runs until interrupted, or for --count messages / --timeout seconds without a message.
A malformed message (not two frames of topic and JSON object, not a PMT dict, an unknown topic,
a missing or null field) is reported as one line on stderr and skipped; the next ones print.
Messages of the other format (PMTs without --pmt, JSON with --pmt) are recognised: after 3 of
them in a row, or at the end with nothing printed, one line says which flag to use and the exit
status is 2. Null metric values (NaN on the wire, e.g. p_md before the first target) print as nan.

Moving targets (frames of M > 1 OFDM symbols, isac-sim --set ofdm.symbols=16 --set
scene.speed_mps=[-30,30]): each target prints its radial speed too, (-30.00 deg, 50.0 m, +12.3 m/s)
(positive = approaching), where the frame has one: a detection whose speed was measured (not null:
one-symbol frames measure none), the truth of a frame with a moving target; the metrics line adds
the speed RMSE once it is defined."""

from __future__ import annotations

import argparse
import json
import math
import sys

import zmq

from ..messages import Detections, MessageError, Truth, to_json
from ..publish import validate_endpoint

TOPICS = ("detections", "truth", "metrics")
METRIC_KEYS = ("p_md", "p_fa", "gospa", "ser")
#: messages of the other wire format in a row after which isac-subscribe says which flag to use
FORMAT_MISMATCH_LIMIT = 3


class MalformedMessage(ValueError):
    """A message that is not what isac-sim publishes (the reason is the text)."""


def _decode_pmt(frames: list[bytes]) -> tuple[str, dict]:
    import pmt

    if len(frames) != 1:
        raise MalformedMessage(f"{len(frames)} frames, a PMT message has 1")
    try:
        body = pmt.to_python(pmt.deserialize_str(frames[0]))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise MalformedMessage(f"not a serialized PMT: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage(f"PMT is a {type(body).__name__}, not a dict")
    body = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in body.items()}
    # gr-zeromq flowgraphs (apps/isac_zmq.grc) publish one port per endpoint without a topic key
    topic = body.pop("topic", "metrics" if "p_md" in body else "detections")
    return str(topic), body


def _decode_json(frames: list[bytes]) -> tuple[str, dict]:
    if len(frames) != 2:
        raise MalformedMessage(f"{len(frames)} frame(s), a JSON message has 2 (topic, body)")
    try:
        topic = frames[0].decode()
    except UnicodeDecodeError:
        raise MalformedMessage(f"topic {frames[0][:40]!r} is not UTF-8") from None
    try:
        body = json.loads(frames[1])
    except ValueError as exc:  # also UnicodeDecodeError
        raise MalformedMessage(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(body), "number")
        raise MalformedMessage(f"body is a JSON {kind}, not an object")
    return topic, body


def decode(frames: list[bytes], pmt_mode: bool) -> tuple[str, dict]:
    """Topic and body dict of one received message; MalformedMessage when it is not one."""
    return _decode_pmt(frames) if pmt_mode else _decode_json(frames)


def _receive(sock, pmt_mode: bool) -> tuple[str, dict]:
    return decode(sock.recv_multipart(), pmt_mode)


def other_format(frames: list[bytes], pmt_mode: bool) -> bool:
    """True when a message that is malformed in the requested format is a valid isac-sim message
    of the other one (a PMT publisher read without --pmt, or a JSON one with it)."""
    try:
        check(*decode(frames, not pmt_mode))
    except (MalformedMessage, ImportError):  # ImportError: no GNU Radio pmt, no PMT to recognise
        return False
    return True


def format_mismatch(endpoint: str, pmt_mode: bool) -> str:
    """The one line that tells which flag the publisher at ``endpoint`` needs."""
    if pmt_mode:
        return (
            f"{endpoint} publishes JSON (isac-sim --zmq-json), not serialized PMTs: run without --pmt, "
            f"isac-subscribe {endpoint}"
        )
    return (
        f"{endpoint} publishes serialized PMTs (isac-sim --zmq), not JSON: run with --pmt, "
        f"isac-subscribe --pmt {endpoint}"
    )


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_metric(v) -> bool:  # null / NaN: not defined yet (no target so far)
    return v is None or isinstance(v, (int, float)) and not isinstance(v, bool)


def check(topic: str, body: dict) -> None:
    """MalformedMessage unless ``body`` has the fields isac-sim publishes on ``topic``: metrics
    frames (int >= 0) and p_md, p_fa, gospa, ser (numbers or null); detections/truth frame and count
    (ints >= 0), angle_deg and range_m (equally long lists of finite numbers)."""
    if topic not in TOPICS:
        raise MalformedMessage(f"unknown topic {topic!r}, expected one of {', '.join(TOPICS)}")
    need = ("frames",) + METRIC_KEYS if topic == "metrics" else ("frame", "count", "angle_deg", "range_m")
    missing = [k for k in need if k not in body]
    if missing:
        raise MalformedMessage(f"{topic} message without {', '.join(missing)}")
    if topic == "metrics":
        bad = [k for k in METRIC_KEYS if not _is_metric(body[k])]
        if not _is_int(body["frames"]) or body["frames"] < 0:
            bad.insert(0, "frames")
    else:
        bad = [k for k in ("frame", "count") if not _is_int(body[k]) or body[k] < 0]
        bad += [
            k
            for k in ("angle_deg", "range_m")
            if not isinstance(body[k], list) or not all(_is_number(v) for v in body[k])
        ]
        if "speed_mps" in body and (  # optional (publishers from before speeds); null: not measured
            not isinstance(body["speed_mps"], list) or not all(v is None or _is_metric(v) for v in body["speed_mps"])
        ):
            bad.append("speed_mps")
        if not bad:
            try:  # the message module's own check of the record (lengths, count)
                (Truth if topic == "truth" else Detections).from_dict(body)
            except MessageError as exc:
                raise MalformedMessage(f"{topic}: {exc}") from None
    if bad:
        raise MalformedMessage(f"{topic}: bad or null {', '.join(bad)} ({', '.join(repr(body[k])[:40] for k in bad)})")


def _metric(v) -> str:
    return "nan" if v is None else f"{v}"


def _speeds(topic: str, body: dict) -> list:
    """Per target its speed (m/s) to print, or None: a detection's measured speed (null on the wire:
    not measured); the truth's speeds when one of the frame's targets moves (static frames: none)."""
    n = len(body["angle_deg"])
    v = body.get("speed_mps")
    if not isinstance(v, list) or len(v) != n:
        return [None] * n
    v = [None if x is None or not math.isfinite(x) else float(x) for x in v]
    if topic == "truth" and not any(x for x in v):
        return [None] * n
    return v


def _line(topic: str, body: dict) -> str:
    if topic == "metrics":
        speed = body.get("speed_rmse_mps")
        return (
            f"[metrics] {body['frames']} frames: p_md={_metric(body['p_md'])} p_fa={_metric(body['p_fa'])} "
            f"GOSPA={_metric(body['gospa'])} SER={_metric(body['ser'])}"
            + (f" speed RMSE={speed} m/s" if _is_number(speed) else "")
        )
    targets = zip(body["angle_deg"], body["range_m"], _speeds(topic, body))
    pairs = "  ".join(
        f"({a:.2f} deg, {r:.1f} m)" if v is None else f"({a:.2f} deg, {r:.1f} m, {v:+.1f} m/s)" for a, r, v in targets
    )
    return f"[{topic}] frame {body['frame']}: {body['count']} targets  {pairs or '-'}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isac-subscribe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoint", help="ZeroMQ endpoint isac-sim publishes on, e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--pmt", action="store_true", help="the publisher sends serialized PMTs (isac-sim --zmq)")
    parser.add_argument("--topic", action="append", choices=TOPICS, help="topics to print (repeatable; default all)")
    parser.add_argument("--count", type=int, default=0, help="stop after printing this many messages (0 = never)")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="stop after this many seconds without a message (0 = never)"
    )
    parser.add_argument("--raw", action="store_true", help="print each message as one JSON line")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        validate_endpoint(args.endpoint, "endpoint", bind=False)
    except ValueError as exc:
        parser.error(str(exc))
    if args.count < 0:
        parser.error(f"--count must be >= 0 (0 = never stop), got {args.count}")
    if not 0 <= args.timeout <= 2e6:  # also refuses nan; zmq takes at most 2**31 - 1 ms
        parser.error(f"--timeout must be in 0-2000000 s (0 = never stop), got {args.timeout}")
    if args.pmt:
        try:
            import pmt  # noqa: F401 - GNU Radio's; the JSON format needs only pyzmq
        except ImportError as exc:
            parser.error(
                f"--pmt needs GNU Radio's pmt module, which does not import here ({exc}): have the "
                f"publisher send JSON (isac-sim --zmq-json) and run without --pmt"
            )
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.connect(args.endpoint)
    # everything, filtered after decoding: PMT messages have no topic frame, and a message of the
    # other format must arrive to be recognised
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    if args.timeout > 0:
        sock.setsockopt(zmq.RCVTIMEO, max(1, round(args.timeout * 1000)))
    printed = malformed = foreign = 0  # foreign: messages of the other format in a row
    try:
        while not args.count or printed < args.count:
            try:
                frames = sock.recv_multipart()
            except zmq.Again:
                break
            try:
                topic, body = decode(frames, args.pmt)
                foreign = 0
                if args.topic and topic not in args.topic:
                    continue
                check(topic, body)
            except MalformedMessage as exc:
                if other_format(frames, args.pmt):
                    foreign += 1
                    if foreign >= FORMAT_MISMATCH_LIMIT:
                        break
                    continue
                foreign = 0
                malformed += 1
                reason = " ".join(str(exc).split())[:300]
                print(f"isac-subscribe: skipped malformed message #{malformed}: {reason}", file=sys.stderr, flush=True)
                continue
            printed += 1
            text = to_json({"topic": topic, **body}) if args.raw else _line(topic, body)
            print(text, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
    if foreign >= FORMAT_MISMATCH_LIMIT or (foreign and not printed):
        print(f"isac-subscribe: error: {format_mismatch(args.endpoint, args.pmt)}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
