"""The webhook address guard (kokeilu.netguard) and the webhook sender built on it: inward
addresses are refused in every notation, at subscription time and again right before connecting
(the connection goes to the address that was checked), and failures say only a short category."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from kokeilu.netguard import AddressPolicy, AddressRefused, UnresolvedHost, is_public
from services.notifications.domain import ADDRESS_REFUSED, RetryPolicy
from services.notifications.webhook import guarded_session, post
from tests.support import Receiver

STRICT = AddressPolicy()
LOCAL = AddressPolicy.parse("127.0.0.0/8,::1")

# Every way of writing an inward destination that an HTTP client (or the resolver) accepts.
INWARD_HOSTS = [
    "127.0.0.1",
    "127.0.0.2",
    "localhost",
    "LOCALHOST.",
    "foo.localhost",
    "0.0.0.0",
    "0",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "127.1",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "169.254.169.254",
    "[::ffff:169.254.169.254]",
    "metadata.google.internal",
    "metadata",
    "printer.local",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "198.18.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[ff02::1]",
    "[2002:7f00:1::]",
    "[2002:a9fe:a9fe::1]",
    "[2002:c0a8:101::]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2001:db8::1]",
]
PUBLIC_ADDRESSES = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "2002:808:808::1",
    "64:ff9b::808:808",
]


def resolving(table: dict[str, list[str]]):
    """A getaddrinfo that answers from `table` (name -> addresses) and fails for anything else."""

    def getaddrinfo(host, port, family=0, type_=0, *args):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for address in table[host]:
            ip = ipaddress.ip_address(address)
            if ip.version == 4:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
            else:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
        return out

    return getaddrinfo


# the address check -----------------------------------------------------------------------------
@pytest.mark.parametrize("host", INWARD_HOSTS)
def test_an_inward_destination_is_refused_in_every_notation(host):
    with pytest.raises(AddressRefused):
        STRICT.check_url(f"http://{host}:8003/hook")


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(address):
    assert is_public(ipaddress.ip_address(address))
    host = f"[{address}]" if ":" in address else address
    STRICT.check_url(f"https://{host}/hook")  # no exception


def test_a_public_name_is_allowed_and_a_name_with_any_inward_address_is_not():
    dns = resolving(
        {
            "hooks.example.org": ["93.184.216.34", "2606:2800:220:1::1"],
            "split.example.org": ["93.184.216.34", "10.0.0.7"],
            "rebind.example.org": ["127.0.0.1"],
            "v6.example.org": ["::ffff:169.254.169.254"],
        }
    )
    STRICT.check_url("https://hooks.example.org/kokeilu", getaddrinfo=dns)
    for name in ("split.example.org", "rebind.example.org", "v6.example.org"):
        with pytest.raises(AddressRefused):
            STRICT.check_url(f"https://{name}/kokeilu", getaddrinfo=dns)


def test_an_inward_name_is_refused_even_when_dns_answers_with_a_public_address():
    dns = resolving({"metadata.google.internal": ["93.184.216.34"], "x.localhost": ["93.184.216.34"]})
    for name in ("metadata.google.internal", "x.localhost"):
        with pytest.raises(AddressRefused):
            STRICT.check_url(f"http://{name}/", getaddrinfo=dns)


def test_a_name_that_does_not_resolve_is_refused_as_such():
    with pytest.raises(UnresolvedHost):
        STRICT.check_url("https://nowhere.example.org/hook", getaddrinfo=resolving({}))


@pytest.mark.parametrize("url", ["ftp://example.org/", "http:///nohost", "file:///etc/passwd"])
def test_only_http_urls_with_a_host_are_checked_as_allowed(url):
    with pytest.raises(AddressRefused):
        STRICT.check_url(url)


def test_the_allow_list_admits_its_networks_and_names_and_nothing_else():
    policy = AddressPolicy.parse(" 127.0.0.0/8 , ::1,hooks.intra.example ,")
    for host in ("127.0.0.1", "127.1", "2130706433", "[::1]", "[::ffff:127.0.0.1]", "localhost"):
        policy.check_url(f"http://{host}:9000/hook")
    intranet = resolving({"hooks.intra.example": ["10.1.2.3"], "other.intra.example": ["10.1.2.4"]})
    policy.check_url("https://hooks.intra.example/hook", getaddrinfo=intranet)
    for host, dns in (
        ("10.0.0.1", socket.getaddrinfo),
        ("169.254.169.254", socket.getaddrinfo),
        ("other.intra.example", intranet),
        ("metadata.google.internal", socket.getaddrinfo),
    ):
        with pytest.raises(AddressRefused):
            policy.check_url(f"http://{host}/hook", getaddrinfo=dns)


def test_an_empty_allow_list_allows_public_addresses_only():
    assert AddressPolicy.parse("") == AddressPolicy.parse(None) == STRICT
    with pytest.raises(AddressRefused):
        AddressPolicy.parse("").check_url("http://127.0.0.1/")


@pytest.mark.parametrize("bad", ["not a host!", "http://x/", "10.0.0.0/33"])
def test_a_malformed_allow_list_entry_is_an_error(bad):
    with pytest.raises(ValueError, match="KOKEILU_WEBHOOK_ALLOWLIST"):
        AddressPolicy.parse(bad)


# sending (to tests.support.Receiver) ---------------------------------------------------------------------------------------
@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def send(policy, url, getaddrinfo=socket.getaddrinfo):
    session = guarded_session(policy, getaddrinfo=getaddrinfo)
    try:
        return post(session, url, b"{}", {"Content-Type": "application/json"}, timeout=5)
    finally:
        session.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "localhost"])
def test_the_sender_refuses_an_inward_address_without_connecting(receiver, host):
    assert send(STRICT, f"http://{host}:{receiver.port}/hook") == (None, ADDRESS_REFUSED)
    assert receiver.received == []


def test_a_name_whose_dns_answer_changed_since_the_subscription_is_refused_at_delivery(receiver):
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # public when subscribed, inward when delivered

    def rebinding(host, port, *args):
        return resolving({host: next(answers)})(host, port)

    url = f"http://rebind.example.org:{receiver.port}/hook"
    STRICT.check_url(url, getaddrinfo=rebinding)  # passes at subscription time
    assert send(STRICT, url, rebinding) == (None, ADDRESS_REFUSED)
    assert receiver.received == []
    assert not RetryPolicy().retryable(None, "webhook", ADDRESS_REFUSED), "a refused delivery is final"


def test_the_sender_connects_to_the_address_it_checked_and_keeps_the_host_name(receiver):
    dns = resolving({"hooks.example.org": ["127.0.0.1"]})
    assert send(LOCAL, f"http://hooks.example.org:{receiver.port}/hook", dns) == (204, None)
    [(headers, _)] = receiver.received
    assert headers["Host"] == f"hooks.example.org:{receiver.port}"


def test_the_sender_never_goes_through_a_proxy_from_the_environment(receiver, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    assert send(LOCAL, f"http://127.0.0.1:{receiver.port}/hook") == (204, None)


def test_a_peer_that_is_not_http_is_described_without_its_banner():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def smtp_like():
        conn, _ = server.accept()
        conn.sendall(b"220 mail.internal.espoo ESMTP Postfix (Debian/GNU) secret-banner\r\n")
        conn.recv(65536)
        conn.close()

    threading.Thread(target=smtp_like, daemon=True).start()
    try:
        status, error = send(LOCAL, f"http://127.0.0.1:{port}/hook")
    finally:
        server.close()
    assert status is None and error == "invalid response"


def test_a_closed_port_is_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends
    assert send(LOCAL, f"http://127.0.0.1:{port}/hook") == (None, "connection refused")


def test_a_name_that_does_not_resolve_at_delivery_is_described_as_such():
    assert send(STRICT, "http://gone.example.org/hook", resolving({})) == (None, "name not resolved")


# TLS: the connection goes to the checked address, the certificate is checked against the name ----
@pytest.fixture
def tls_receiver(tmp_path):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=hooks.example.org",
            "-addext",
            "subjectAltName=DNS:hooks.example.org",
        ],
        check=True,
        capture_output=True,
    )
    r = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    r.server.socket = context.wrap_socket(r.server.socket, server_side=True)
    r.cert = str(cert)
    yield r
    r.close()


def test_a_tls_webhook_is_verified_against_its_host_name_though_the_connection_goes_to_the_checked_address(
    tls_receiver,
):
    dns = resolving({"hooks.example.org": ["127.0.0.1"], "other.example.org": ["127.0.0.1"]})
    session = guarded_session(LOCAL, getaddrinfo=dns)
    session.verify = tls_receiver.cert
    try:
        ok = post(session, f"https://hooks.example.org:{tls_receiver.port}/hook", b"{}", {}, timeout=5)
        wrong_name = post(session, f"https://other.example.org:{tls_receiver.port}/hook", b"{}", {}, timeout=5)
    finally:
        session.close()
    assert ok == (204, None)
    assert wrong_name == (None, "tls error")
    assert len(tls_receiver.received) == 1


# connections kept between POSTs ------------------------------------------------------------------
class Answering:
    """An HTTP/1.1 server (keep-alive) answering every POST with `status` and `body`; counts the
    connections it accepted."""

    def __init__(self, status: int, body: bytes = b"", length: int | None = None):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                outer.connections += 1
                super().setup()

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(body)
                    except OSError:  # the client closed an answer it did not read
                        pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    "status, body, kept",
    [(204, b"", True), (200, b"", True), (202, b"accepted", False), (200, b"x" * 5_000_000, False)],
)
def test_an_answer_without_a_body_keeps_its_connection_for_the_next_post(status, body, kept):
    server = Answering(status, body)
    session = guarded_session(AddressPolicy.parse("127.0.0.1"))
    try:
        url = f"http://127.0.0.1:{server.port}/hook"
        for _ in range(3):
            assert post(session, url, b"{}", {"Content-Type": "application/json"}, timeout=5) == (status, None)
    finally:
        session.close()
        server.close()
    assert server.connections == (1 if kept else 3)
