"""Read and write sertools streams from Python (formats/stream.md).

Standard library, msgpack and msgpack_numpy only; copy this file next to a
script or put sertools' python/ directory on PYTHONPATH.

    import sertools_stream as ss
    with ss.open_stream("feats.msgpack") as s:          # "-" is stdin
        print(s.header["params"].get("melspec"))
        for item in s:                                    # ss.Item(key, tensors, fields)
            print(item.key, item.tensors["logmel"].shape, item.fields)

Iteration ends only at the end record, after checking that its count equals
the items read and that nothing follows it; a stream cut short (a killed
producer, a full disk) raises TruncatedStream instead of looking like a
shorter dataset.  Any other violation of the format raises StreamError.

    ss.write_stream("out.msgpack", header_params={"tensor": "logmel"},
                    items=[ss.Item("utt1", {"logmel": array}, {"label": 2})])
writes a complete stream atomically (temporary file, fsync, rename).
"""
import os
import sys
import tempfile
from collections import namedtuple

import msgpack
import msgpack_numpy
import numpy as np

__all__ = ["Item", "StreamError", "TruncatedStream", "open_stream", "read_stream", "write_stream"]

Item = namedtuple("Item", "key tensors fields")


class StreamError(ValueError):
    """The file is not a valid sertools stream."""


class TruncatedStream(StreamError):
    """The stream ends before its end record: it was cut short."""


class Stream:
    """An open stream: .header (dict), iteration over Items, .count after the end."""

    def __init__(self, f, name, close):
        self._f, self.name, self._close = f, name, close
        self._unpacker = msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False,
                                          max_buffer_size=0)
        self.count, self.end = 0, None
        self.header = self._next("header")
        if not isinstance(self.header, dict) or self.header.get("type") != "header":
            raise StreamError(f"{name}: the first record is not a header")
        if self.header.get("format") != "sertools-stream":
            raise StreamError(f"{name}: format {self.header.get('format')!r}, not sertools-stream")
        if not isinstance(self.header.get("version"), int) or self.header["version"] > 1:
            raise StreamError(f"{name}: version {self.header.get('version')!r} (this reader knows 1)")

    def _next(self, what):
        try:
            return next(self._unpacker)
        except StopIteration:
            raise TruncatedStream(f"{self.name}: ends before the {what} (truncated)") from None
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as e:
            raise StreamError(f"{self.name}: {what}: not msgpack ({e})") from None

    def __iter__(self):
        while self.end is None:
            rec = self._next(f"item {self.count + 1} or the end record")
            kind = rec.get("type") if isinstance(rec, dict) else None
            if kind == "item":
                self.count += 1
                yield Item(rec.get("key"), rec.get("tensors", {}), rec.get("fields", {}))
            elif kind == "end":
                if rec.get("count") != self.count:
                    raise StreamError(f"{self.name}: end record counts {rec.get('count')} items, "
                                      f"{self.count} were read")
                try:
                    next(self._unpacker)
                except StopIteration:
                    self.end = rec
                    return
                raise StreamError(f"{self.name}: data after the end record")
            else:
                raise StreamError(f"{self.name}: item {self.count + 1}: record type {kind!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._close:
            self._f.close()


def open_stream(path):
    """A Stream over path ("-": stdin); use it with `with` to close the file."""
    if path == "-":
        return Stream(sys.stdin.buffer, "stdin", False)
    return Stream(open(path, "rb"), path, True)


def read_stream(path):
    """(header, [Item...]) of a whole stream, checked to its end record."""
    with open_stream(path) as s:
        return s.header, list(s)


def _c_order(a):
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


def write_stream(path, header_params, items, producer="python"):
    """Writes a header with header_params, the items and the end record to
    path atomically ("-": stdout, not atomic)."""
    pack = msgpack.Packer(default=msgpack_numpy.encode, use_bin_type=True)
    header = {"type": "header", "format": "sertools-stream", "version": 1, "producer": producer,
              "producer_version": "python", "argv": [producer], "params": dict(header_params), "history": []}

    def records():
        yield pack.pack(header)
        n = 0
        for it in items:
            rec = {"type": "item", "key": it.key, "tensors": {k: _c_order(v) for k, v in it.tensors.items()}}
            if it.fields:
                rec["fields"] = dict(it.fields)
            yield pack.pack(rec)
            n += 1
        yield pack.pack({"type": "end", "count": n})

    if path == "-":
        for r in records():
            sys.stdout.buffer.write(r)
        sys.stdout.buffer.flush()
        return
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as out:
            for r in records():
                out.write(r)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m
