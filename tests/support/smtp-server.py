"""A real SMTP server for Coffer's mail tests (aiosmtpd, from target/test-venv).

STARTTLS is required before anything else and AUTH (PLAIN or LOGIN, one account) before
MAIL FROM, as on a real submission port. Each accepted message is parsed with Python's e-mail
library and appended to `<dir>/received.jsonl` as one JSON object (envelope, headers, the
decoded text and HTML parts, the raw message). The file
`<dir>/mode` chooses faults: `451` answers DATA with 451 (temporary), `550` answers RCPT TO
with 550 (permanent); anything else accepts. Every DATA attempt's Message-ID is appended to
`<dir>/attempts`, so tests can see retries. Prints `ready <port>` once it listens.

usage: smtp-server.py DIR PORT CERT KEY USER PASSWORD
"""

import json
import os
import signal
import socket
import ssl
import sys
import threading
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    directory, port, cert, key, user, password = sys.argv[1:7]
    port = int(port)
    if port == 0:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()

    def store(envelope, parsed):
        text = parsed.get_body(preferencelist=("plain",))
        html = parsed.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(parsed["From"]),
            "to": str(parsed["To"]),
            "subject": str(parsed["Subject"]),
            "message_id": str(parsed["Message-ID"]),
            "content_type": parsed.get_content_type(),
            "text": text.get_content().replace("\r\n", "\n") if text is not None else None,
            "html": html.get_content().replace("\r\n", "\n") if html is not None else None,
            "raw": envelope.original_content.decode("utf-8", "replace"),
        }
        with open(os.path.join(directory, "received.jsonl"), "a") as received:
            received.write(json.dumps(record) + "\n")

    def mode():
        try:
            with open(os.path.join(directory, "mode")) as control:
                return control.read().strip()
        except FileNotFoundError:
            return ""

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if mode() == "550":
                return "550 5.1.1 <%s>: no such mailbox here" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            parsed = message_from_bytes(envelope.original_content, policy=policy.default)
            with open(os.path.join(directory, "attempts"), "a") as attempts:
                attempts.write("%s\n" % parsed.get("Message-ID", ""))
            if mode() == "451":
                return "451 4.3.0 mailbox busy, try again later"
            store(envelope, parsed)
            return "250 2.0.0 accepted"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd itself answers 535 to a failure.
        return AuthResult(success=ok, handled=False)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print("ready %d" % port, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.2):
        pass
    controller.stop()


if __name__ == "__main__":
    main()
