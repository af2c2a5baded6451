"""isac-subscribe survives malformed messages: each one is reported as one line on stderr and
skipped, every valid message around it is printed. Publishers here bind 127.0.0.1 only."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import zmq

from gnuradio.isac.cli import subscribe as S


def _json(topic, body):
    return [topic.encode(), json.dumps(body).encode()]


DET = {"frame": 0, "count": 1, "angle_deg": [-30.0], "range_m": [50.0], "gain": [None]}  # gain: a NaN
TRUTH = {"frame": 0, "count": 2, "angle_deg": [-31.5, 20.25], "range_m": [40.0, 120.5]}
METRICS = {"frames": 1, "p_md": None, "p_fa": 0.0, "gospa": 12.5, "ser": 0.0}  # p_md: NaN, no target yet
EMPTY = {"frame": 1, "count": 0, "angle_deg": [], "range_m": []}
GOOD_JSON = [_json("detections", DET), _json("truth", TRUTH), _json("metrics", METRICS), _json("detections", EMPTY)]
GOOD_LINES = [
    "[detections] frame 0: 1 targets  (-30.00 deg, 50.0 m)",
    "[truth] frame 0: 2 targets  (-31.50 deg, 40.0 m)  (20.25 deg, 120.5 m)",
    "[metrics] 1 frames: p_md=nan p_fa=0.0 GOSPA=12.5 SER=0.0",
    "[detections] frame 1: 0 targets  -",
]
BAD_JSON = [
    [b"detections", b"\x00\xffnot json"],  # not JSON
    [b"\xff\xfedetections", b"{}"],  # topic not UTF-8
    _json("detections", [1, 2]),  # a JSON list
    [b"detections", b"null"],
    [b"detections", b"NaN"],
    _json("detections", {**DET, "frame": None}),  # null field
    _json("detections", {**DET, "angle_deg": None}),
    _json("truth", {**TRUTH, "angle_deg": [1.0, None]}),  # null in a list
    _json("truth", {**TRUTH, "range_m": [40.0]}),  # lengths differ
    _json("detections", {**DET, "count": "1"}),
    [b"detections"],  # a partial message (one frame)
    [b"detections", b"{}", b"{}"],  # three frames
    _json("metrics", {"frames": 2, "p_md": 0.1}),  # missing keys
    _json("metrics", {**METRICS, "gospa": "12"}),
    _json("weather", {"frame": 1}),  # unknown topic
]


def _bad_first_interleaved(bad, good):
    """bad[0], good[0], bad[1], bad[2], good[1], ...: every good message follows a bad one, the
    last message is good (the subscriber stops after the good ones, --count)."""
    out, bad = [], list(bad)
    for i, g in enumerate(good):
        take = len(bad) if i == len(good) - 1 else min(len(bad), 1 + i)
        out += bad[:take] + [g]
        bad = bad[take:]
    return out


#: isac-subscribe in a Python where GNU Radio's pmt (and so its runtime) does not import
WITHOUT_PMT = (
    "import sys\n"
    "sys.modules['pmt'] = sys.modules['gnuradio.gr'] = None  # import pmt: ImportError\n"
    "from gnuradio.isac.cli.subscribe import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _run_subscriber(messages, n_good, extra=(), without_pmt=False):
    """Start isac-subscribe, wait for its subscription on an XPUB socket (a PUB that sees
    subscriptions: nothing sent before it is lost), send ``messages``; bounded throughout.
    ``without_pmt``: in a Python where GNU Radio's pmt does not import."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.RCVTIMEO, 30000)
    pub.bind("tcp://127.0.0.1:0")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    proc = subprocess.Popen(
        [
            sys.executable,
            *(("-c", WITHOUT_PMT) if without_pmt else ("-m", "gnuradio.isac.cli.subscribe")),
            endpoint,
            "--count",
            str(n_good),
            "--timeout",
            "30",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pub.recv() == b"\x01"  # the subscription to everything (b"")
        for frames in messages:
            pub.send_multipart(frames)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        pub.close(linger=0)
    return proc.returncode, out.splitlines(), err.splitlines()


def _assert_reported(err, n_bad):
    assert "Traceback" not in "\n".join(err)
    assert err == [line for line in err if line.startswith("isac-subscribe: skipped malformed message #")]
    assert [line.split("#")[1].split(":")[0] for line in err] == [str(i + 1) for i in range(n_bad)]


def test_json_subscriber_reports_bad_messages_and_prints_every_good_one():
    messages = _bad_first_interleaved(BAD_JSON, GOOD_JSON)
    rc, out, err = _run_subscriber(messages, len(GOOD_JSON))
    assert rc == 0, err
    assert out == GOOD_LINES
    _assert_reported(err, len(BAD_JSON))
    assert "body is not JSON" in err[0] and "topic b'\\xff\\xfedetections' is not UTF-8" in err[1]
    assert "body is a JSON array, not an object" in err[2]
    assert "detections: bad or null frame (None)" in err[5]
    assert "1 frame(s), a JSON message has 2" in err[10] and "metrics message without p_fa, gospa, ser" in err[12]
    assert "unknown topic 'weather'" in err[14]


def _pmt(body):
    import pmt

    return [pmt.serialize_str(pmt.to_pmt(body))]


def test_pmt_subscriber_reports_bad_messages_and_prints_every_good_one_as_strict_json():
    import pmt

    good = [
        _pmt(
            {"topic": "detections", "frame": 3, "count": 1, "angle_deg": np.array([-20.0]), "range_m": np.array([80.0])}
        ),
        _pmt({"topic": "metrics", "frames": 4, "p_md": math.nan, "p_fa": 0.0, "gospa": 3.0, "ser": 0.0}),
        # gr-zeromq flowgraphs (apps/isac_zmq.grc) send the dict without a topic key
        _pmt({"frames": 5, "p_md": 0.5, "p_fa": 0.25, "gospa": 2.0, "ser": 0.0, "comm_frames": 5}),
    ]
    bad = [
        [b"garbage"],
        [b""],
        [b"\t\x00\x00"],
        _pmt("not a dict"),
        _pmt({"topic": "detections", "frame": 1}),
        [
            pmt.serialize_str(
                pmt.dict_add(
                    pmt.to_pmt({"topic": "truth", "frame": 1, "count": 1, "range_m": np.array([1.0])}),
                    pmt.intern("angle_deg"),
                    pmt.PMT_NIL,
                )
            )
        ],  # null field
        _pmt({"topic": "detections"}) * 2,
    ]
    rc, out, err = _run_subscriber(_bad_first_interleaved(bad, good), len(good), ["--pmt", "--raw"])
    assert rc == 0, err
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")) for line in out]
    assert rows == [
        {"topic": "detections", "frame": 3, "count": 1, "angle_deg": [-20.0], "range_m": [80.0]},
        {"topic": "metrics", "frames": 4, "p_md": None, "p_fa": 0.0, "gospa": 3.0, "ser": 0.0},
        {"topic": "metrics", "frames": 5, "p_md": 0.5, "p_fa": 0.25, "gospa": 2.0, "ser": 0.0, "comm_frames": 5},
    ]
    _assert_reported(err, len(bad))
    assert "not a serialized PMT" in err[0] and "PMT is a str, not a dict" in err[3]
    assert "2 frames, a PMT message has 1" in err[6]


@pytest.mark.parametrize("frames", BAD_JSON)
def test_decode_and_check_raise_one_error_type(frames):
    with pytest.raises(S.MalformedMessage):
        S.check(*S.decode(frames, False))


@pytest.mark.parametrize("frames,line", zip(GOOD_JSON, GOOD_LINES))
def test_good_json_messages_pass(frames, line):
    topic, body = S.decode(frames, False)
    S.check(topic, body)
    assert S._line(topic, body) == line


@pytest.mark.parametrize(
    "argv,message",
    [
        (["tcp://127.0.0.1:0"], "endpoint 'tcp://127.0.0.1:0': port 0 is out of range"),
        (["tcp://127.0.0.1:99999"], "port 99999 is out of range"),
        (["127.0.0.1:5556"], "no scheme://"),
        (["tcp://127.0.0.1:5556", "--count", "-1"], "--count must be >= 0"),
        (["tcp://127.0.0.1:5556", "--timeout", "-2"], "--timeout must be in 0-2000000 s"),
        (["tcp://127.0.0.1:5556", "--timeout", "nan"], "--timeout must be in 0-2000000 s"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        S.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_timeout_ends_a_quiet_subscription(capsys):
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind("tcp://127.0.0.1:0")
    try:
        assert S.main([pub.getsockopt_string(zmq.LAST_ENDPOINT), "--timeout", "0.2"]) == 0
    finally:
        pub.close(linger=0)
    assert capsys.readouterr().out == ""


def _pmt_publication(topic, body):
    """One message as isac-sim --zmq publishes it: the dict with its topic as a serialized PMT."""
    arrays = {k: np.asarray(v, dtype=np.float64) if isinstance(v, list) else v for k, v in body.items()}
    return _pmt({"topic": topic, **arrays})


PMT_PUBLICATIONS = [_pmt_publication("detections", {**DET, "gain": [1.0]}), _pmt_publication("truth", TRUTH)] * 20


@pytest.mark.parametrize(
    "messages, extra, flag",
    [
        (
            PMT_PUBLICATIONS,
            [],
            "publishes serialized PMTs (isac-sim --zmq), not JSON: run with --pmt, isac-subscribe --pmt ",
        ),
        (GOOD_JSON * 10, ["--pmt"], "publishes JSON (isac-sim --zmq-json), not serialized PMTs: run without --pmt, "),
        (PMT_PUBLICATIONS, ["--topic", "truth"], "not JSON: run with --pmt"),  # a topic filter does not hide them
    ],
)
def test_the_other_wire_format_is_recognised_and_named(messages, extra, flag):
    """A PMT publisher read without --pmt (or a JSON one with it) printed one "skipped malformed
    message" line per message and exited 0; now, after a few such messages, one line names the
    flag to use and the exit status is 2."""
    rc, out, err = _run_subscriber(messages, 5, extra)
    assert rc == 2
    assert out == []
    assert len(err) == 1 and err[0].startswith("isac-subscribe: error: tcp://127.0.0.1:") and flag in err[0], err


def test_a_few_messages_of_the_other_format_at_the_end_are_named_too():
    """Fewer messages than the limit, then the timeout: still the one line and status 2."""
    rc, out, err = _run_subscriber(PMT_PUBLICATIONS[:2], 5, ["--timeout", "1"])
    assert rc == 2 and out == []
    assert len(err) == 1 and "run with --pmt" in err[0], err


def test_json_subscriber_needs_no_pmt():
    """The JSON format needs only pyzmq: with GNU Radio's pmt not importable, every good message
    prints and every bad one is reported, as with it."""
    code, out, err = _run_subscriber(_bad_first_interleaved(BAD_JSON, GOOD_JSON), len(GOOD_JSON), without_pmt=True)
    assert code == 0, err
    assert out == GOOD_LINES
    _assert_reported(err, len(BAD_JSON))


def test_pmt_subscriber_without_pmt_is_refused_naming_the_flag():
    """--pmt where GNU Radio's pmt does not import: one line naming --pmt and the JSON way, exit
    status 2, before connecting (a traceback at the first message before)."""
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_PMT, "tcp://127.0.0.1:9", "--pmt", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("isac-subscribe: error: --pmt needs GNU Radio's pmt module, which does not import here")
    assert last.endswith("have the publisher send JSON (isac-sim --zmq-json) and run without --pmt")
