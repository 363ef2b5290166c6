"""Every AWS failure botocore retries is told to the event stream (aws_retry), from the real
retry path: an endpoint that throttles twice, then answers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from deployer.aws.session import make_context

pytestmark = pytest.mark.integration

THROTTLED = b"""<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>
<Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>"""
IDENTITY = b"""<GetCallerIdentityResponse><GetCallerIdentityResult>
<Arn>arn:aws:iam::123456789012:user/t</Arn><UserId>AID</UserId><Account>123456789012</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></GetCallerIdentityResponse>"""


@pytest.fixture
def throttling_twice():
    answers = [(400, THROTTLED), (400, THROTTLED), (200, IDENTITY)]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, body = answers.pop(0) if answers else (200, IDENTITY)
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_each_retried_failure_is_reported_once(throttling_twice):
    aws = make_context(
        "eu-west-1",
        endpoint_url=throttling_twice,
        credentials={"aws_access_key_id": "t", "aws_secret_access_key": "t"},
    )
    retried: list[tuple[str, str, int]] = []
    aws.on_retry = lambda *seen: retried.append(seen)
    assert aws.client("sts").get_caller_identity()["Account"] == "123456789012"
    assert retried == [
        ("sts.GetCallerIdentity", "Throttling", 1),
        ("sts.GetCallerIdentity", "Throttling", 2),
    ]
