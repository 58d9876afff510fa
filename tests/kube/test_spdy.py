#!/usr/bin/env python3
"""Unit tests for spdy.py: the frames kubectl does not send in selftest.sh
(PING, SETTINGS, RST_STREAM, GOAWAY, HEADERS) and byte-at-a-time input.

    python3 tests/kube/test_spdy.py
"""

import asyncio
import struct
import sys
import unittest
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spdy  # noqa: E402


class Client:
    """A hand-rolled SPDY client side: its own zlib streams, so the
    session's header codec is checked against an independent peer."""

    def __init__(self):
        self.deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def block(self, pairs):
        raw = struct.pack(">I", len(pairs))
        for name, value in pairs:
            raw += struct.pack(">I", len(name)) + name.encode()
            raw += struct.pack(">I", len(value)) + value.encode()
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, sid, pairs, flags=0):
        payload = struct.pack(">IIH", sid, 0, 0) + self.block(pairs)
        return spdy.control_frame(spdy.SYN_STREAM, flags, payload)


class Harness:
    def __init__(self):
        self.sent = bytearray()
        self.streams = []
        self.session = spdy.Session(self.write, self.streams.append)
        self.reader = spdy.FrameReader()

    async def write(self, data):
        self.sent += data

    def frames(self):
        frames = self.reader.feed(bytes(self.sent))
        self.sent.clear()
        return frames


def run(coro):
    return asyncio.run(coro)


class SessionTest(unittest.TestCase):
    def test_dictionary_is_the_spdy3_one(self):
        # A zlib stream names its dictionary by Adler-32, and kubectl's zlib
        # refuses any other: this is the value kubectl 1.32's blocks carry.
        self.assertEqual(len(spdy.DICTIONARY), 1423)
        self.assertEqual(zlib.adler32(spdy.DICTIONARY), 0xE3C6A7C2)

    def test_header_block_round_trip(self):
        codec = spdy.HeaderCodec()
        peer = spdy.HeaderCodec()
        for headers in ({}, {"streamtype": ["data"], "port": ["8080"]}, {"a": ["1", "2"]}):
            self.assertEqual(peer.decode(codec.encode(headers)), headers)

    def test_syn_stream_gets_reply_and_data_flows(self):
        async def go():
            h, c = Harness(), Client()
            frame = c.syn_stream(1, [("streamtype", "data"), ("port", "5432"), ("requestid", "7")])
            # One byte at a time: frames may be split anywhere.
            for i in range(len(frame)):
                await h.session.feed(frame[i:i + 1])
            (reply,) = h.frames()
            self.assertEqual((reply.kind, reply.stream_id), (spdy.SYN_REPLY, 1))
            self.assertEqual(c.inflate.decompress(reply.payload[4:]), b"\0\0\0\0")
            (stream,) = h.streams
            self.assertEqual(stream.header("port"), "5432")
            self.assertEqual(stream.header("requestid"), "7")
            await h.session.feed(spdy.data_frame(1, 0, b"hello") + spdy.data_frame(1, spdy.FLAG_FIN, b""))
            self.assertEqual(await stream.read(), b"hello")
            self.assertEqual(await stream.read(), b"")
            (update,) = h.frames()
            self.assertEqual(update.kind, spdy.WINDOW_UPDATE)
            self.assertEqual(struct.unpack(">II", update.payload), (1, 5))
            await stream.write(b"x" * (spdy.MAX_DATA + 1))
            await stream.close()
            sent = h.frames()
            self.assertEqual([(f.kind, len(f.payload), f.fin) for f in sent],
                             [(0, spdy.MAX_DATA, False), (0, 1, False), (0, 0, True)])
            self.assertNotIn(1, h.session.streams)  # both halves closed
        run(go())

    def test_ping_is_echoed_and_settings_kept(self):
        async def go():
            h = Harness()
            await h.session.feed(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 5)))
            await h.session.feed(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 6)))
            settings = struct.pack(">III", 1, 7, 65536)  # INITIAL_WINDOW_SIZE
            await h.session.feed(spdy.control_frame(spdy.SETTINGS, 0, settings))
            (pong,) = h.frames()  # the even (server-side) id is not echoed
            self.assertEqual((pong.kind, pong.payload), (spdy.PING, struct.pack(">I", 5)))
            self.assertEqual(h.session.peer_settings, {7: 65536})
        run(go())

    def test_rst_stream_ends_reads(self):
        async def go():
            h, c = Harness(), Client()
            await h.session.feed(c.syn_stream(1, [("streamtype", "error")]))
            await h.session.feed(c.syn_stream(3, [("streamtype", "data")]))  # zlib context carries over
            self.assertEqual([s.header("streamtype") for s in h.streams], ["error", "data"])
            await h.session.feed(spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 3, spdy.CANCEL)))
            self.assertEqual(await h.streams[1].read(), b"")
            with self.assertRaises(ConnectionResetError):
                await h.streams[1].write(b"late")
            h.frames()
            await h.session.feed(spdy.data_frame(3, 0, b"after reset"))
            (rst,) = h.frames()
            self.assertEqual(rst.kind, spdy.RST_STREAM)
            self.assertEqual(struct.unpack(">II", rst.payload), (3, spdy.INVALID_STREAM))
        run(go())

    def test_headers_frame_keeps_zlib_in_step(self):
        async def go():
            h, c = Harness(), Client()
            await h.session.feed(c.syn_stream(1, [("streamtype", "data")]))
            block = c.block([("x-trailer", "1")])
            await h.session.feed(spdy.control_frame(spdy.HEADERS, spdy.FLAG_FIN, struct.pack(">I", 1) + block))
            self.assertEqual(await h.streams[0].read(), b"")
            await h.session.feed(c.syn_stream(3, [("streamtype", "error")]))
            self.assertEqual(h.streams[1].header("streamtype"), "error")
        run(go())

    def test_goaway_and_protocol_errors(self):
        async def go():
            h, c = Harness(), Client()
            await h.session.feed(c.syn_stream(1, [("streamtype", "data")]))
            await h.session.feed(spdy.control_frame(spdy.GOAWAY, 0, struct.pack(">II", 0, 0)))
            self.assertEqual(await h.streams[0].read(), b"")
            h2 = Harness()
            bad_version = struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1"
            with self.assertRaises(spdy.ProtocolError):
                await h2.session.feed(bad_version)
            (goaway,) = h2.frames()
            self.assertEqual(goaway.kind, spdy.GOAWAY)
            self.assertEqual(struct.unpack(">II", goaway.payload), (0, spdy.PROTOCOL_ERROR))
            h3 = Harness()
            with self.assertRaises(spdy.ProtocolError):  # a server-side (even) id from the client
                await h3.session.feed(Client().syn_stream(2, []))
        run(go())


if __name__ == "__main__":
    unittest.main(verbosity=1)
