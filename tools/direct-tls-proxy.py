#!/usr/bin/env python3
"""PostgreSQL 17's direct TLS (`sslnegotiation=direct`) in front of an older server.

PostgreSQL 17 accepts a connection that starts with a TLS handshake at once, without the
SSLRequest message, and refuses it unless the client offered the ALPN protocol
"postgresql". Debian 12 has PostgreSQL 15, which knows neither, so tests/postgres/tls.rs
puts this in front of it: it ends the TLS (with the test server's certificate and key),
refuses a client that did not negotiate "postgresql" as PostgreSQL 17 does, and passes the
bytes after the handshake (the startup message onwards, as over plain TCP) to the server.

usage: direct-tls-proxy.py CERT KEY SERVER_PORT

Listens on 127.0.0.1 at a port of the system's choosing and prints it on a line of its own;
then prints `refused: REASON` or `accepted` per client. Ends when its standard input closes
(the test holds it open), so it never outlives the test.
"""

import socket
import ssl
import sys
import threading


def pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, context, server_port):
    try:
        tls = context.wrap_socket(client, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print(f"refused: handshake failed: {e}", flush=True)
        client.close()
        return
    alpn = tls.selected_alpn_protocol()
    if alpn != "postgresql":
        # PostgreSQL 17: "received direct SSL connection request without ALPN protocol
        # negotiation extension".
        print(f"refused: ALPN {alpn!r}", flush=True)
        tls.close()
        return
    print("accepted", flush=True)
    upstream = socket.create_connection(("127.0.0.1", server_port))
    threading.Thread(target=pipe, args=(upstream, tls), daemon=True).start()
    pipe(tls, upstream)


def main():
    cert, key, server_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["postgresql"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)

    def accept():
        while True:
            client, _ = listener.accept()
            threading.Thread(target=serve, args=(client, context, server_port), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()  # until the test closes it


if __name__ == "__main__":
    main()
