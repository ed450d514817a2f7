#!/usr/bin/env python3
"""A TCP proxy in front of a PostgreSQL server, for measuring a client's round trips.

    tools/pg-proxy.py TARGET_HOST TARGET_PORT [--listen PORT] [--delay-ms MS] [--count]

--delay-ms MS   delays every chunk by MS in each direction, so a local server looks as far
                away as a remote one (a round trip costs 2 x MS more), where the kernel has
                no netem. Order is kept per direction; chunks are delayed, not the stream
                throttled.
--count         counts, per connection, the requests the client makes and waits on: its
                startup packet (and an SSLRequest), each simple Query, each Sync that ends
                a batch of the extended protocol, and each password or SASL message.
                Terminate is not counted (nothing answers it). It reads the client's side of
                the protocol in plain text, so TLS must be off (sslmode=disable). Prints
                "connection" when a connection opens and "requests N" when it ends.
--listen PORT   the port to listen on (default 0: one the kernel gives).

It prints "listening on 127.0.0.1:PORT" once it listens.
"""
import argparse
import asyncio
import struct

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


async def pump(reader, writer, delay, counter=None):
    """Copies one direction, each chunk `delay` seconds late (if any), feeding `counter`."""
    queue = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(65536)
            if counter is not None and data:
                counter.feed(data)
            await queue.put((asyncio.get_running_loop().time() + delay, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--listen", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--count", action="store_true")
    args = parser.parse_args()
    delay = args.delay_ms / 1000

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(args.host, args.port)
        except OSError:
            client_writer.close()
            return
        counter = Counter() if args.count else None
        if counter is not None:
            print("connection", flush=True)
        await asyncio.gather(
            pump(client_reader, server_writer, delay, counter),
            pump(server_reader, client_writer, delay),
            return_exceptions=True,
        )
        if counter is not None:
            print(f"requests {counter.requests}", flush=True)

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen)
    listening = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{listening}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
