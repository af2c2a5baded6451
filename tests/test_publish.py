"""ZeroMQ publishing (gnuradio.isac.publish): endpoints are validated before binding, the bound
endpoint (the port chosen for :0) is exposed, and messages reach a subscriber on 127.0.0.1."""

import json
import re

import numpy as np
import pytest
import zmq

from gnuradio.isac.messages import jsonable
from gnuradio.isac.publish import Publisher, validate_endpoint

FORMS = "expected tcp://HOST:PORT"


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:5556",
        "tcp://127.0.0.1:0",
        "tcp://*:5556",
        "tcp://*:*",
        "tcp://[::1]:1",
        "tcp://lo:5556",
        "ipc:///tmp/isac.sock",
        "inproc://isac",
    ],
)
def test_valid_endpoints_pass_unchanged(endpoint):
    assert validate_endpoint(endpoint, "--zmq-json") == endpoint


@pytest.mark.parametrize(
    "endpoint,problem",
    [
        ("tcp://127.0.0.1:99999", "port 99999 is out of range"),
        ("tcp://127.0.0.1:65536", "port 65536 is out of range"),
        ("", "empty"),
        (None, "not a string"),
        ("127.0.0.1:5556", "no scheme://"),
        ("udp://127.0.0.1:5556", "scheme 'udp' is not one of tcp, ipc, inproc"),
        ("tcp://127.0.0.1", "needs HOST:PORT"),
        ("tcp://:5556", "needs HOST:PORT"),
        ("tcp://127.0.0.1:-1", "port '-1' is not a number"),
        ("tcp://127.0.0.1:http", "port 'http' is not a number"),
        ("tcp://127.0.0.256:5556", "host 127.0.0.256 is not an IPv4 address"),
        ("tcp://[::1:5556", "host [::1 is not a bracketed IPv6 address"),
        ("tcp://a;b:5556", "host 'a;b' is not a host name"),
        ("tcp://127.0.0.1:5556 ", "white space"),
        ("ipc://", "nothing after ipc://"),
    ],
)
def test_invalid_endpoints_name_the_option_and_the_allowed_form(endpoint, problem):
    with pytest.raises(ValueError) as exc:
        validate_endpoint(endpoint, "--zmq-json")
    text = str(exc.value)
    assert text.startswith(f"--zmq-json {endpoint!r}: ") and problem in text and FORMS in text
    assert "\n" not in text


def test_connect_endpoints_need_a_definite_host_and_port():
    assert validate_endpoint("tcp://127.0.0.1:5556", bind=False) == "tcp://127.0.0.1:5556"
    assert validate_endpoint("tcp://localhost:65535", bind=False) == "tcp://localhost:65535"  # resolved by zmq
    for endpoint, problem in (
        ("tcp://127.0.0.1:0", "port 0 is out of range"),
        ("tcp://*:5556", "binding only"),
        ("tcp://127.0.0.1:*", "port '*' is not a number"),
    ):
        with pytest.raises(ValueError, match=re.escape(problem)):
            validate_endpoint(endpoint, "endpoint", bind=False)


def test_publisher_refuses_a_port_that_zmq_would_wrap_around():
    # zmq alone binds tcp://127.0.0.1:99999 to port 99999 - 65536 = 34463 without a word
    with pytest.raises(ValueError, match=r"--zmq 'tcp://127.0.0.1:99999': port 99999 is out of range"):
        Publisher("tcp://127.0.0.1:99999", "pmt", name="--zmq")
    with pytest.raises(ValueError, match="endpoint '': empty"):
        Publisher("")


def _receive_one(pub: Publisher, connect_to: str) -> list[bytes]:
    """Publish until the subscriber (connected to ``connect_to``) has the message: PUB drops
    what it sends before the subscription arrives. At most 100 tries of 0.1 s."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(connect_to)
    try:
        for _ in range(100):
            pub.publish("detections", {"frame": 4, "count": 0, "angle_deg": np.zeros(0), "range_m": np.zeros(0)})
            if sub.poll(100):
                return sub.recv_multipart()
        raise AssertionError(f"nothing arrived from {connect_to}")
    finally:
        sub.close(linger=0)


def test_port_zero_binds_a_free_port_and_the_publisher_says_which():
    pub = Publisher("tcp://127.0.0.1:0")
    try:
        assert pub.requested == "tcp://127.0.0.1:0"
        host, port = pub.endpoint.rsplit(":", 1)
        assert host == "tcp://127.0.0.1" and 1 <= int(port) <= 65535
        topic, body = _receive_one(pub, pub.endpoint)
        assert topic == b"detections" and json.loads(body) == {"frame": 4, "count": 0, "angle_deg": [], "range_m": []}
        assert pub.published >= 1
        # the bound port is taken: a second publisher on it fails with the option's name
        with pytest.raises(ValueError, match=rf"--zmq-json '{pub.endpoint}': cannot bind: "):
            Publisher(pub.endpoint, name="--zmq-json")
    finally:
        pub.close()


def test_fixed_endpoints_are_reported_as_bound():
    pub = Publisher("inproc://isac-test-publish", "json")
    try:
        assert pub.endpoint == pub.requested == "inproc://isac-test-publish"
        assert _receive_one(pub, pub.endpoint)[0] == b"detections"
    finally:
        pub.close()


def test_jsonable_takes_zero_dimensional_arrays():
    assert jsonable({"x": np.array(2.5), "n": np.array(3), "v": np.array([[1, 2]]), "z": np.array(np.nan)}) == {
        "x": 2.5,
        "n": 3,
        "v": [[1, 2]],
        "z": None,
    }


@pytest.mark.parametrize("host", ["nosuchhost.invalid", "localhost"])
def test_a_host_name_to_bind_is_refused_with_a_sentence(host):
    """ZeroMQ binds *, an IP address or an interface, never a host name: it said "cannot bind: No
    such device" (after isac-sim's calibration). The endpoint is refused before anything binds,
    naming the option, the host and this machine's interfaces."""
    endpoint = f"tcp://{host}:5556"
    for refuse in (lambda: validate_endpoint(endpoint, "--zmq-json"), lambda: Publisher(endpoint, name="--zmq-json")):
        with pytest.raises(ValueError) as exc:
            refuse()
        text = str(exc.value)
        assert text.startswith(f"--zmq-json {endpoint!r}: host {host!r} is not a network interface of this machine (")
        assert "ZeroMQ binds to *, an IP address of this machine or an interface, not to a host name" in text
        assert "No such device" not in text and "\n" not in text and "lo" in text


def test_an_address_of_another_machine_cannot_be_bound_and_says_so():
    with pytest.raises(ValueError) as exc:
        Publisher(
            "tcp://203.0.113.77:5556", name="--zmq"
        )  # TEST-NET-3: documentation only, never this machine's address
    assert str(exc.value) == (
        "--zmq 'tcp://203.0.113.77:5556': cannot bind: 203.0.113.77 is not an IP address of this machine "
        "(bind to one of its own addresses, or *)"
    )


def test_isac_sim_refuses_a_host_name_to_bind_before_calibrating(capsys, monkeypatch):
    from gnuradio.isac import evaluation
    from gnuradio.isac.cli import sim

    monkeypatch.setattr(evaluation, "calibrate", lambda *a, **k: pytest.fail("calibrated first"))
    with pytest.raises(SystemExit) as exc:
        sim.main(["--frames", "1", "--zmq-json", "tcp://nosuchhost.invalid:5556", "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("isac-sim: error: --zmq-json 'tcp://nosuchhost.invalid:5556': host 'nosuchhost.invalid' ")
