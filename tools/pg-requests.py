#!/usr/bin/env python3
"""A TCP proxy in front of a PostgreSQL server that counts, per connection, the requests
the client makes and waits on: its startup packet (and an SSLRequest), each simple Query,
each Sync that ends a batch of the extended protocol, and each password or SASL message.
Terminate is not counted (nothing answers it). It reads the client's side of the protocol
in plain text, so TLS must be off (sslmode=disable). For tests that keep a command's round
trips from growing (cli/tests/server.sh).

    tools/pg-requests.py TARGET_HOST TARGET_PORT

It listens on a port the kernel gives, prints "listening on 127.0.0.1:PORT", then
"connection" when a connection opens and "requests N" when it ends.
"""
import asyncio
import struct
import sys

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
WAITED = {ord("Q"), ord("S"), ord("p")}


class Counter:
    """Parses the client's messages as they arrive, in chunks of any size."""

    def __init__(self):
        self.buffer = b""
        self.started = False
        self.requests = 0

    def feed(self, data):
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                self.requests += 1
                # An encryption request is answered, then a startup packet follows.
                self.started = code not in (SSL_REQUEST, GSSENC_REQUEST)
            else:
                if len(self.buffer) < 5:
                    return
                kind = self.buffer[0]
                (length,) = struct.unpack("!i", self.buffer[1:5])
                if len(self.buffer) < 1 + length:
                    return
                self.buffer = self.buffer[1 + length:]
                if kind in WAITED:
                    self.requests += 1


async def pump(reader, writer, counter=None):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if counter is not None:
                counter.feed(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    host, port = sys.argv[1], int(sys.argv[2])

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        print("connection", flush=True)
        counter = Counter()
        await asyncio.gather(
            pump(client_reader, server_writer, counter),
            pump(server_reader, client_writer),
            return_exceptions=True,
        )
        print(f"requests {counter.requests}", flush=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    listening = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{listening}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
