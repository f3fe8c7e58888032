"""The files `make demo`'s users send, served the way Twilio serves a `MediaUrl`, from a
small HTTP server on loopback that the demo starts and stops.

The worker fetches media only from a provider's hosts. The demo adds this server (its
`127.0.0.1:<port>`) to `TWILIO_MEDIA_HOSTS` in the environment of the receiver and the
worker it starts, nothing else: `TWILIO_API_BASE_URL` and `META_API_BASE_URL` stay as
configured, so no send of any number is redirected here. And it does so only when the
Twilio leg answers on the console (the Demo Bakery's number, no Twilio credentials
configured): the worker then fetches these files with no Basic auth at all, so no
credential is ever sent to this server. Unlike Twilio's, its URLs need no auth.

The files are the test fixtures' (`tests/fixtures/media/make.sh` copies them here), as
package data of `worker.demo`: the demo runs from an installed wheel, without `tests/`.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files

DEMO_ACCOUNT_SID = "ACdemo"


@dataclass(frozen=True)
class DemoFile:
    name: str
    content_type: str


VOICE_NOTE = DemoFile("voice_note.ogg", "audio/ogg")
PHOTO = DemoFile("photo.jpg", "image/jpeg")
PDF = DemoFile("order.pdf", "application/pdf")


class MediaServer:
    """Serves each file added at a Twilio-shaped `MediaUrl` of its own, from its
    creation until `close`."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        served = self._files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                found = served.get(self.path.rsplit("/", 1)[-1])
                if found is None:
                    self.send_error(404)
                    return
                content, content_type = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the demo's terminal shows the conversation."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        """What `TWILIO_MEDIA_HOSTS` must allow: this host and port."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def add(self, file: DemoFile) -> str:
        """The `MediaUrl` of one of the demo's files."""
        media_sid = f"ME{uuid.uuid4().hex}"
        content = files("worker.demo").joinpath("media", file.name).read_bytes()
        self._files[media_sid] = (content, file.content_type)
        message_sid = f"MM{uuid.uuid4().hex}"
        return (
            f"http://{self.host}/2010-04-01/Accounts/{DEMO_ACCOUNT_SID}"
            f"/Messages/{message_sid}/Media/{media_sid}"
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
