"""The server side of SPDY/3.1, as much as `kubectl port-forward` uses.

kubectl (1.31+) tunnels a SPDY/3.1 session inside WebSocket binary messages
(subprotocol `SPDY/3.1+portforward.k8s.io`); older ones upgrade the HTTP
connection to SPDY/3.1 directly. Either way the bytes are the same, so this
module knows nothing about the transport: `Session.feed()` takes whatever
bytes arrived (frames may be split or joined arbitrarily) and the session
writes its own frames through an async `write(bytes)` callable.

Implemented (draft-mbelshe-httpbis-spdy / SPDY/3.1):

* frame parsing for DATA (with FIN) and the control frames SYN_STREAM,
  SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS and WINDOW_UPDATE;
* name/value header blocks, compressed with one zlib stream per direction
  primed with the SPDY/3 dictionary (section 2.6.10.1 of the spec);
* client-initiated streams only: each SYN_STREAM is answered with a
  SYN_REPLY and handed to `on_stream`; PINGs are echoed; GOAWAY ends the
  session; received DATA is acknowledged with WINDOW_UPDATE.

Not implemented: server push (server-initiated streams), priorities,
enforcing the peer's flow-control window when sending (writes are chunked
but never wait for WINDOW_UPDATE), SETTINGS persistence, and CREDENTIAL.
"""

import asyncio
import struct
import zlib

VERSION = 3

# Control frame types.
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9
CONTROL_NAMES = {SYN_STREAM: "SYN_STREAM", SYN_REPLY: "SYN_REPLY", RST_STREAM: "RST_STREAM",
                 SETTINGS: "SETTINGS", PING: "PING", GOAWAY: "GOAWAY", HEADERS: "HEADERS",
                 WINDOW_UPDATE: "WINDOW_UPDATE"}

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9

MAX_DATA = 16 * 1024  # bytes per DATA frame we send


def _dictionary():
    """The SPDY/3 header compression dictionary (spec section 2.6.10.1):
    common header names and values, each after a 4-byte big-endian length,
    then one run of status codes, reason phrases, dates and media types."""
    words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
        "accept-encoding", "accept-language", "accept-ranges", "age", "allow",
        "authorization", "cache-control", "connection", "content-base", "content-encoding",
        "content-language", "content-length", "content-location", "content-md5",
        "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
        "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
        "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate",
        "proxy-authorization", "range", "referer", "retry-after", "server", "te", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
        "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
        "public", "set-cookie", "keep-alive", "origin",
    ]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505"
        "203 Non-Authoritative Information"
        "204 No Content"
        "301 Moved Permanently"
        "400 Bad Request"
        "401 Unauthorized"
        "403 Forbidden"
        "404 Not Found"
        "500 Internal Server Error"
        "501 Not Implemented"
        "503 Service Unavailable"
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,"
        "application/xhtml+xml,text/plain,text/javascript,public"
        "privatemax-age=gzip,deflate,sdch"
        "charset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    out = bytearray()
    for word in words:
        out += struct.pack(">I", len(word)) + word.encode()
    out += tail.encode()
    return bytes(out)


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    pass


# ---------------------------------------------------------------- headers

def pack_header_block(headers):
    """Name/value block: a 32-bit count, then for each pair a 32-bit length
    and the name, a 32-bit length and the value. Several values of one name
    travel joined by NUL bytes. Names are lower case."""
    out = bytearray(struct.pack(">I", len(headers)))
    for name, values in headers.items():
        if isinstance(values, str):
            values = [values]
        name_b = name.lower().encode()
        value_b = b"\x00".join(v.encode() for v in values)
        out += struct.pack(">I", len(name_b)) + name_b
        out += struct.pack(">I", len(value_b)) + value_b
    return bytes(out)


def unpack_header_block(block):
    """Returns {name: [values]} from an uncompressed name/value block."""
    def take(pos, n):
        if pos + n > len(block):
            raise ProtocolError("truncated header block")
        return block[pos:pos + n], pos + n

    raw, pos = take(0, 4)
    (count,) = struct.unpack(">I", raw)
    headers = {}
    for _ in range(count):
        raw, pos = take(pos, 4)
        name, pos = take(pos, struct.unpack(">I", raw)[0])
        raw, pos = take(pos, 4)
        value, pos = take(pos, struct.unpack(">I", raw)[0])
        if not name:
            raise ProtocolError("empty header name")
        headers.setdefault(name.decode(errors="replace"), []).extend(
            v.decode(errors="replace") for v in value.split(b"\x00"))
    return headers


class HeaderCodec:
    """One zlib stream per direction, shared by every frame with a header
    block on the session; each block we send ends with a sync flush so the
    peer can decode it without waiting for more."""

    def __init__(self):
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def encode(self, headers):
        block = pack_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, data):
        try:
            return unpack_header_block(self._inflate.decompress(data))
        except zlib.error as e:
            raise ProtocolError(f"header block does not inflate: {e}") from e


# ---------------------------------------------------------------- frames

def control_frame(kind, flags, payload):
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id, flags, data):
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


class Frame:
    """A parsed frame. `kind` is 0 for DATA, else the control type."""

    def __init__(self, kind, flags, payload, stream_id=0):
        self.kind = kind
        self.flags = flags
        self.payload = payload
        self.stream_id = stream_id

    @property
    def fin(self):
        return bool(self.flags & FLAG_FIN)

    def __repr__(self):
        name = "DATA" if self.kind == 0 else CONTROL_NAMES.get(self.kind, f"type{self.kind}")
        return f"<{name} stream={self.stream_id} flags={self.flags} len={len(self.payload)}>"


class FrameReader:
    """Cuts a byte stream into frames: an 8-byte common header whose top bit
    tells control from data, a flags byte and a 24-bit length."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            first, second = struct.unpack_from(">II", self._buf)
            length = second & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            flags = second >> 24
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version}, want {VERSION}")
                kind = first & 0xFFFF
                stream_id = 0
                if kind in (SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE) and length >= 4:
                    stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
                frames.append(Frame(kind, flags, payload, stream_id))
            else:
                frames.append(Frame(0, flags, payload, first & 0x7FFFFFFF))
        return frames


# ---------------------------------------------------------------- session

class Stream:
    """One client-initiated stream. `read()` returns the next chunk of data,
    or b"" once the client has half-closed (FIN) or reset the stream."""

    def __init__(self, session, stream_id, headers):
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._incoming = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.reset = False

    def header(self, name, default=None):
        values = self.headers.get(name.lower())
        return values[0] if values else default

    async def read(self):
        if self.remote_closed and self._incoming.empty():
            return b""
        return await self._incoming.get()

    async def write(self, data):
        if self.local_closed or self.reset:
            raise ConnectionResetError(f"SPDY stream {self.id} is closed")
        for i in range(0, len(data), MAX_DATA):
            await self.session.send(data_frame(self.id, 0, data[i:i + MAX_DATA]))

    async def close(self):
        """Half-closes our side: an empty DATA frame with FIN."""
        if not self.local_closed and not self.reset:
            self.local_closed = True
            await self.session.send(data_frame(self.id, FLAG_FIN, b""))
            if self.remote_closed:
                self.session.remove(self)

    def _deliver(self, data, fin):
        if data:
            self._incoming.put_nowait(data)
        if fin and not self.remote_closed:
            self.remote_closed = True
            self._incoming.put_nowait(b"")

    def _on_reset(self):
        self.reset = True
        self.local_closed = True
        self._deliver(b"", True)


class Session:
    """Server side of one SPDY/3.1 session.

    `write` is an async callable that puts bytes on the transport;
    `on_stream(stream)` is called for each new stream once its SYN_REPLY is
    on the way. `trace(str)`, if given, sees every frame in both
    directions."""

    def __init__(self, write, on_stream, trace=None):
        self._write = write
        self._on_stream = on_stream
        self._trace = trace
        self._reader = FrameReader()
        self._codec = HeaderCodec()
        self._lock = asyncio.Lock()
        self.streams = {}
        self.last_stream_id = 0
        self.closed = False
        self.peer_settings = {}

    async def send(self, frame_bytes, encode=None):
        """Writes one frame. `encode(codec) -> bytes`, if given, builds the
        frame under the lock, so header blocks are compressed in the same
        order they go out (the zlib stream is shared)."""
        async with self._lock:
            if self.closed:
                raise ConnectionResetError("SPDY session is closed")
            if encode is not None:
                frame_bytes = encode(self._codec)
            if self._trace:
                self._trace(f"send {FrameReader().feed(frame_bytes)[0]!r}")
            await self._write(frame_bytes)

    async def feed(self, data):
        """Handles whatever arrived from the client. Raises ProtocolError
        on a malformed session (after sending GOAWAY)."""
        try:
            frames = self._reader.feed(data)
        except ProtocolError:
            await self.goaway(PROTOCOL_ERROR)
            raise
        for frame in frames:
            if self._trace:
                self._trace(f"recv {frame!r}")
            try:
                await self._handle(frame)
            except ProtocolError:
                await self.goaway(PROTOCOL_ERROR)
                raise

    async def _handle(self, frame):
        p = frame.payload
        if frame.kind == 0:
            stream = self.streams.get(frame.stream_id)
            if stream is None or stream.remote_closed:
                await self.rst(frame.stream_id, INVALID_STREAM if stream is None else STREAM_ALREADY_CLOSED)
                return
            stream._deliver(p, frame.fin)
            if stream.remote_closed and stream.local_closed:
                self.remove(stream)
            if p and not stream.remote_closed:
                # Give the client its window back (64 KiB per stream by default).
                await self.send(control_frame(WINDOW_UPDATE, 0, struct.pack(">II", stream.id, len(p))))
        elif frame.kind == SYN_STREAM:
            if len(p) < 10:
                raise ProtocolError("short SYN_STREAM")
            headers = self._codec.decode(p[10:])  # always inflate: the zlib stream is shared
            if self._trace:
                self._trace(f"  headers {', '.join(f'{k}={v}' for k, vs in headers.items() for v in vs)}")
            sid = frame.stream_id
            if sid in self.streams:
                await self.rst(sid, STREAM_IN_USE)
                return
            if sid % 2 == 0 or sid <= self.last_stream_id:
                raise ProtocolError(f"bad client stream id {sid}")
            self.last_stream_id = sid
            stream = Stream(self, sid, headers)
            self.streams[sid] = stream
            await self.send(None, lambda codec: control_frame(
                SYN_REPLY, 0, struct.pack(">I", sid) + codec.encode({})))
            if frame.flags & FLAG_UNIDIRECTIONAL:
                stream.local_closed = True
            if frame.fin:
                stream._deliver(b"", True)
            self._on_stream(stream)
        elif frame.kind == HEADERS:
            if len(p) < 4:
                raise ProtocolError("short HEADERS")
            self._codec.decode(p[4:])  # nothing uses trailing headers; keep zlib in step
            stream = self.streams.get(frame.stream_id)
            if stream is not None and frame.fin:
                stream._deliver(b"", True)
        elif frame.kind == SYN_REPLY:
            if len(p) >= 4:
                self._codec.decode(p[4:])
            await self.rst(frame.stream_id, PROTOCOL_ERROR)  # we never open streams
        elif frame.kind == RST_STREAM:
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream._on_reset()
        elif frame.kind == SETTINGS:
            if len(p) < 4:
                raise ProtocolError("short SETTINGS")
            (count,) = struct.unpack_from(">I", p)
            for i in range(count):
                if 4 + 8 * i + 8 > len(p):
                    raise ProtocolError("truncated SETTINGS")
                id_flags, value = struct.unpack_from(">II", p, 4 + 8 * i)
                self.peer_settings[id_flags & 0xFFFFFF] = value
        elif frame.kind == PING:
            if len(p) != 4:
                raise ProtocolError("PING payload must be 4 bytes")
            (ping_id,) = struct.unpack(">I", p)
            if ping_id % 2 == 1:  # client-initiated: echo it
                await self.send(control_frame(PING, 0, p))
        elif frame.kind == GOAWAY:
            self._end_streams()
        elif frame.kind == WINDOW_UPDATE:
            pass  # we do not hold back sends for the peer's window
        # Unknown control frames are ignored, as the spec asks.

    async def rst(self, stream_id, code):
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream._on_reset()
        await self.send(control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, code)))

    async def goaway(self, code=0):
        if self.closed:
            return
        try:
            await self.send(control_frame(GOAWAY, 0, struct.pack(">II", self.last_stream_id, code)))
        except (ConnectionResetError, ConnectionError):
            pass
        self.closed = True
        self._end_streams()

    def _end_streams(self):
        for stream in list(self.streams.values()):
            stream._on_reset()
        self.streams.clear()

    def remove(self, stream):
        """Forgets a stream that both sides have closed."""
        self.streams.pop(stream.id, None)

    def connection_lost(self):
        self.closed = True
        self._end_streams()
