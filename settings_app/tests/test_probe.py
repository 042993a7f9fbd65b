"""The AI model probe: the saved-URL check, pinning, deadline, size and redirect limits, TLS, model lists.

Every server here listens on 127.0.0.1 (or ::1); addresses that must never be
contacted are only ever checked or handed to a recording fake connector. The
address rules themselves: core/tests/test_guarded_fetch.py.
"""

import contextlib
import ipaddress
import json
import socket
import time

import pytest

from core import guarded_fetch
from settings_app import probe
from settings_app.tests.fake_servers import (
    OLLAMA_TAGS,
    ollama_handler,
    openai_handler,
    send_json,
    serve,
    tls_server_context,
)


def ip(text):
    return ipaddress.ip_address(text)


class TestSavedUrlCheck:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:11434",
            "http://127.1:11434",
            "http://2130706433",
            "http://0x7f000001",
            "http://[::1]:11434",
            "http://[::ffff:127.0.0.1]:11434",
            "http://localhost:11434",
            "http://ollama.localhost",
            "http://169.254.169.254/latest",
            "http://[fd00:ec2::254]",
            "http://224.0.0.1",
            "http://0.0.0.0:11434",
        ],
    )
    def test_refused_literals_and_localhost(self, url, connection_attempts):
        with pytest.raises(guarded_fetch.UrlRefused, match=r"^Refused: "):
            probe.validate_saved_url(url, allow_loopback=False)
        assert connection_attempts == []

    def test_host_names_are_not_resolved_when_saving(self, monkeypatch):
        def no_dns(*args, **kwargs):
            raise AssertionError("DNS was used while saving")

        monkeypatch.setattr(socket, "getaddrinfo", no_dns)
        assert probe.validate_saved_url(" http://ollama.example.com:11434 ", allow_loopback=False) == (
            "http://ollama.example.com:11434"
        )
        assert probe.validate_saved_url("http://192.168.1.50:11434", allow_loopback=False)

    def test_loopback_may_be_saved_when_allowed(self):
        assert probe.validate_saved_url("http://localhost:11434", allow_loopback=True) == "http://localhost:11434"


class TestRefusedAddressesAreNeverContacted:
    """The listening sockets below would see any connection attempt; none may arrive."""

    @pytest.fixture
    def listeners(self):
        v4 = socket.create_server(("127.0.0.1", 0))
        v6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        v4.setblocking(False)
        v6.setblocking(False)
        yield v4, v6
        v4.close()
        v6.close()

    @staticmethod
    def assert_nothing_arrived(listener):
        with pytest.raises(BlockingIOError):
            listener.accept()

    def test_loopback_in_every_spelling(self, listeners, monkeypatch):
        v4, v6 = listeners
        port4, port6 = v4.getsockname()[1], v6.getsockname()[1]
        connects = []
        real_connect = socket.socket.connect
        monkeypatch.setattr(
            socket.socket, "connect", lambda self, address: connects.append(address) or real_connect(self, address)
        )
        urls = [
            f"http://127.0.0.1:{port4}",
            f"http://localhost:{port4}",
            f"http://127.1:{port4}",
            f"http://2130706433:{port4}",
            f"http://0x7f000001:{port4}",
            f"http://[::ffff:127.0.0.1]:{port4}",
            f"https://127.0.0.1:{port4}",
            f"http://[::1]:{port6}",
        ]
        for url in urls:
            with pytest.raises(guarded_fetch.UrlRefused, match="loopback"):
                probe.probe_models(url, allow_loopback=False)
        assert connects == []
        self.assert_nothing_arrived(v4)
        self.assert_nothing_arrived(v6)

    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://[::ffff:169.254.169.254]/",
            "http://169.254.10.10:11434",
            "http://[fe80::1]:11434",
            "http://224.0.0.251:5353",
            "http://[ff02::1]:80",
            "http://0.0.0.0:11434",
            "http://[::]:11434",
            "http://255.255.255.255",
        ],
    )
    def test_refused_addresses(self, url, connection_attempts):
        with pytest.raises(guarded_fetch.UrlRefused, match=r"^Refused: "):
            probe.probe_models(url, allow_loopback=True)
        assert connection_attempts == []

    def test_a_name_with_any_refused_address_is_refused(self, monkeypatch, connection_attempts):
        answers = [("192.168.1.50", 11434), ("169.254.169.254", 11434)]
        monkeypatch.setattr(
            socket,
            "getaddrinfo",
            lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", addr) for addr in answers],
        )
        with pytest.raises(guarded_fetch.UrlRefused, match=r"ollama.lan resolves to 169.254.169.254, a cloud metadata"):
            probe.probe_models("http://ollama.lan:11434", allow_loopback=False)
        assert connection_attempts == []


class RecordingConnector:
    """Stands in for guarded_fetch._connect: records the address, never opens a socket."""

    def __init__(self):
        self.addresses = []

    def __call__(self, address, port, deadline):
        self.addresses.append((address, port))
        raise ConnectionRefusedError(111, "Connection refused")


class TestPinning:
    @pytest.mark.parametrize("url", ["http://192.168.1.50:11434", "http://10.0.0.5:8000/v1"])
    def test_private_lan_passes_the_check_and_only_that_address_is_dialled(self, url, monkeypatch):
        connector = RecordingConnector()
        monkeypatch.setattr(guarded_fetch, "_connect", connector)
        with pytest.raises(probe.ProbeFailed, match="Could not connect to the AI server"):
            probe.probe_models(url, allow_loopback=False)
        target = guarded_fetch.parse_url(url)
        assert connector.addresses == [(ip(target.host), target.port)]

    def test_dns_rebinding_cannot_move_the_connection(self, monkeypatch):
        # The first answer is checked and used; a later, loopback answer is never asked for.
        answers = iter(["203.0.113.10", "127.0.0.1"])
        lookups = []

        def rebinding_getaddrinfo(host, port, *args, **kwargs):
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
        connector = RecordingConnector()
        monkeypatch.setattr(guarded_fetch, "_connect", connector)
        with pytest.raises(probe.ProbeFailed):
            probe.probe_models("http://rebind.example:11434", allow_loopback=False)
        assert lookups == ["rebind.example"]
        assert connector.addresses == [(ip("203.0.113.10"), 11434)]

    def test_every_request_of_a_probe_goes_to_the_checked_address(self, monkeypatch, openai_server):
        # Two requests (Ollama's path, then OpenAI's); a second lookup would say 127.0.0.2,
        # where nothing listens, so only a pinned probe can succeed.
        answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])
        lookups = []

        def rebinding_getaddrinfo(host, port, *args, **kwargs):
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
        result = probe.probe_models(f"http://ai.rebind.example:{openai_server.port}", allow_loopback=True)
        assert result.provider_type == "openai"
        assert lookups == ["ai.rebind.example"]
        assert [r["path"] for r in openai_server.requests] == ["/api/tags", "/v1/models"]
        # The original name travels in the Host header.
        assert {r["headers"]["Host"] for r in openai_server.requests} == {f"ai.rebind.example:{openai_server.port}"}


@pytest.mark.usefixtures("allow_loopback")
class TestModelLists:
    def test_ollama(self, ollama_server):
        result = probe.probe_models(ollama_server.url)
        assert result == probe.ProbeResult(
            provider_type="ollama",
            models=[
                {"name": "llama3:latest", "size": 4661224676, "modified_at": "2024-05-01T10:00:00Z"},
                {"name": "mistral:7b", "size": 4109865159, "modified_at": "2024-04-01T10:00:00Z"},
            ],
        )
        assert [r["path"] for r in ollama_server.requests] == ["/api/tags"]
        assert ollama_server.requests[0]["headers"]["User-Agent"] == probe.USER_AGENT

    def test_openai_compatible_without_v1(self, openai_server):
        result = probe.probe_models(openai_server.url + "/")
        assert result == probe.ProbeResult(
            provider_type="openai",
            models=[{"name": "gpt-oss-20b", "owned_by": "vllm"}, {"name": "qwen2.5-7b-instruct", "owned_by": "vllm"}],
        )
        assert [r["path"] for r in openai_server.requests] == ["/api/tags", "/v1/models"]

    def test_openai_compatible_with_v1_asks_only_for_models(self, openai_server):
        result = probe.probe_models(openai_server.url + "/v1")
        assert result.provider_type == "openai"
        assert [r["path"] for r in openai_server.requests] == ["/v1/models"]

    def test_a_base_path_is_kept(self, openai_server):
        result = probe.probe_models(openai_server.url + "/proxy/v1/")
        assert result.provider_type == "openai"
        assert [r["path"] for r in openai_server.requests] == ["/proxy/v1/models"]

    def test_api_key_is_sent_as_bearer(self, openai_server):
        probe.probe_models(openai_server.url + "/v1", api_key="sk-local-123")
        assert openai_server.requests[0]["headers"]["Authorization"] == "Bearer sk-local-123"

    def test_no_authorization_without_a_key(self, ollama_server):
        probe.probe_models(ollama_server.url)
        assert "Authorization" not in ollama_server.requests[0]["headers"]

    def test_empty_model_list(self):
        with serve(lambda h: send_json(h, 200, {"models": []})) as fake:
            assert probe.probe_models(fake.url) == probe.ProbeResult(provider_type="ollama", models=[])

    def test_chunked_answer(self):
        def chunked(handler):
            body = json.dumps(OLLAMA_TAGS).encode()
            handler.send_response(200)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for start in range(0, len(body), 50):
                part = body[start : start + 50]
                handler.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            handler.wfile.write(b"0\r\n\r\n")

        with serve(chunked) as fake:
            assert [m["name"] for m in probe.probe_models(fake.url).models] == ["llama3:latest", "mistral:7b"]

    def test_ipv6_loopback_server(self):
        with serve(ollama_handler, host="::1") as fake:
            assert probe.probe_models(fake.url).provider_type == "ollama"


@pytest.mark.usefixtures("allow_loopback")
class TestUnusableAnswers:
    def test_redirects_are_not_followed(self):
        def redirect(handler):
            handler.send_response(302)
            handler.send_header("Location", "http://169.254.169.254/latest/meta-data")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with serve(redirect) as fake, pytest.raises(probe.ProbeFailed, match="redirects are not followed") as exc:
            probe.probe_models(fake.url)
        assert [r["path"] for r in fake.requests] == ["/api/tags", "/v1/models"]
        assert "HTTP 302" in str(exc.value)

    def test_non_2xx(self):
        with (
            serve(lambda h: send_json(h, 500, {"error": "boom"})) as fake,
            pytest.raises(probe.ProbeFailed, match=r"not an Ollama or OpenAI-compatible server.*HTTP 500"),
        ):
            probe.probe_models(fake.url)

    def test_unauthorised_openai_server(self):
        def needs_key(handler):
            send_json(handler, 401 if handler.path == "/v1/models" else 404, {"error": "no"})

        with serve(needs_key) as fake, pytest.raises(probe.ProbeFailed, match="/v1/models: HTTP 401"):
            probe.probe_models(fake.url)

    @pytest.mark.parametrize(
        "payload",
        [
            {"hello": "world"},
            {"models": "llama3"},
            {"models": [{"title": "llama3"}]},
            {"models": [{"name": ""}]},
            {"data": [{"id": 5}]},
            ["llama3"],
        ],
    )
    def test_not_a_model_list(self, payload):
        with (
            serve(lambda h: send_json(h, 200, payload)) as fake,
            pytest.raises(probe.ProbeFailed, match="not an Ollama or OpenAI-compatible server"),
        ):
            probe.probe_models(fake.url)

    def test_not_json_and_never_echoed(self):
        secret_page = b"<html>internal admin console: password=hunter2</html>"

        def html(handler):
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", str(len(secret_page)))
            handler.end_headers()
            handler.wfile.write(secret_page)

        with serve(html) as fake, pytest.raises(probe.ProbeFailed, match="not JSON") as exc:
            probe.probe_models(fake.url)
        assert "hunter2" not in str(exc.value)

    def test_oversized_with_content_length(self):
        body = json.dumps({"models": [{"name": "x" * 100}] * 12000}).encode()
        assert len(body) > probe.MAX_RESPONSE_BYTES

        def big(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            with contextlib.suppress(OSError):
                handler.wfile.write(body)

        with serve(big) as fake, pytest.raises(probe.ProbeFailed, match="larger than 1024 KiB"):
            probe.probe_models(fake.url)

    def test_oversized_without_content_length(self):
        def endless(handler):
            handler.send_response(200)
            handler.send_header("Connection", "close")
            handler.end_headers()
            with contextlib.suppress(OSError):
                handler.wfile.write(b'{"models": [' + b'{"name": "padding"},' * 80000)
            handler.close_connection = True

        with serve(endless) as fake, pytest.raises(probe.ProbeFailed, match="larger than 1024 KiB"):
            probe.probe_models(fake.url)

    def test_nothing_listening(self):
        port = socket.create_server(("127.0.0.1", 0))
        free_port = port.getsockname()[1]
        port.close()
        with pytest.raises(probe.ProbeFailed, match="Could not connect to the AI server"):
            probe.probe_models(f"http://127.0.0.1:{free_port}")

    def test_unresolvable_name(self, monkeypatch):
        def fail(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", fail)
        with pytest.raises(probe.ProbeFailed, match=r"Could not resolve the host name nowhere.example"):
            probe.probe_models("http://nowhere.example:11434")

    def test_not_http(self):
        def garbage(handler):
            handler.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n")
            handler.close_connection = True

        with serve(garbage) as fake, pytest.raises(probe.ProbeFailed, match="did not give a valid HTTP answer"):
            probe.probe_models(fake.url)


@pytest.mark.usefixtures("allow_loopback")
class TestDeadline:
    def test_a_server_that_never_answers(self, short_deadline):
        def silent(handler):
            time.sleep(2.5)

        with serve(silent) as fake, pytest.raises(probe.ProbeFailed, match="did not answer within 1 seconds"):
            probe.probe_models(fake.url)

    def test_a_server_that_drips_is_cut_off_at_the_overall_deadline(self, short_deadline):
        # Each byte comes well within the deadline, the whole answer long after it.
        def drip(handler):
            try:
                handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(25):
                    handler.wfile.write(b"X-Drip: 1\r\n")
                    handler.wfile.flush()
                    time.sleep(0.1)
                body = json.dumps(OLLAMA_TAGS).encode()
                handler.wfile.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            except OSError:
                pass
            handler.close_connection = True

        with serve(drip) as fake, pytest.raises(probe.ProbeFailed, match="did not answer within 1 seconds"):
            probe.probe_models(fake.url)

    def test_a_slow_name_lookup_counts_against_the_deadline(self, short_deadline, monkeypatch, connection_attempts):
        def slow_lookup(*args, **kwargs):
            time.sleep(1.5)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.50", 80))]

        monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
        with pytest.raises(probe.ProbeFailed, match="did not answer within 1 seconds"):
            probe.probe_models("http://slow-dns.example")
        assert connection_attempts == []


@pytest.mark.usefixtures("allow_loopback")
class TestTls:
    def test_certificate_verified_against_the_host_name_with_sni(self, test_ca, trust_ca):
        trust_ca(test_ca)
        with serve(ollama_handler, tls=tls_server_context(test_ca, "localhost")) as fake:
            result = probe.probe_models(f"https://localhost:{fake.port}")
        assert result.provider_type == "ollama"
        assert fake.server_names == ["localhost"]
        assert fake.requests[0]["headers"]["Host"] == f"localhost:{fake.port}"

    def test_untrusted_certificate(self, test_ca):
        with (
            serve(ollama_handler, tls=tls_server_context(test_ca, "localhost")) as fake,
            pytest.raises(probe.ProbeFailed, match=r"TLS certificate .* could not be verified"),
        ):
            probe.probe_models(f"https://localhost:{fake.port}")
        assert fake.requests == []

    def test_certificate_for_another_name(self, test_ca, trust_ca):
        trust_ca(test_ca)
        with (
            serve(ollama_handler, tls=tls_server_context(test_ca, "ollama.other.example")) as fake,
            pytest.raises(probe.ProbeFailed, match="could not be verified: Hostname mismatch"),
        ):
            probe.probe_models(f"https://localhost:{fake.port}")
        assert fake.requests == []


def test_openai_handler_is_real_shaped():
    # Guard for the fixtures themselves: OpenAI's list shape, not Ollama's.
    with serve(openai_handler) as fake:
        pass
    assert fake.url.startswith("http://127.0.0.1:")
