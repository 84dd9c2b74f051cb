"""Sertools streams and Cnn14 checkpoints from Python (tests and benchmarks).

A checkpoint is a sertools stream (formats/stream.md, formats/checkpoint.md):
a header whose params.model describes the architecture, then one item per
state-dict entry (key = parameter name, tensor "value"), then the end record.
Only msgpack and msgpack_numpy are used to read and write it, so this module
doubles as the proof that Python reads what the C side writes.
"""
import os
import tempfile
from collections import OrderedDict

import msgpack
import msgpack_numpy
import numpy as np

VERSION = "0.1.0"


def _c_order(a):
    # np.ascontiguousarray would turn a 0-dim array (num_batches_tracked) into 1-dim.
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


def read_stream(path):
    """(header, [item records], end record) of a whole stream; checks the count."""
    header, items, end = None, [], None
    with open(path, "rb") as f:
        unpacker = msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False,
                                    max_buffer_size=0)
        for rec in unpacker:
            if end is not None:
                raise ValueError(f"{path}: record after the end record")
            kind = rec.get("type")
            if header is None:
                if kind != "header":
                    raise ValueError(f"{path}: first record is {kind!r}, not a header")
                header = rec
            elif kind == "item":
                items.append(rec)
            elif kind == "end":
                end = rec
            else:
                raise ValueError(f"{path}: unexpected record type {kind!r}")
    if end is None:
        raise ValueError(f"{path}: no end record (truncated)")
    if end["count"] != len(items):
        raise ValueError(f"{path}: end count {end['count']} != {len(items)} items")
    return header, items, end


def make_header(producer, params, argv=None):
    return {"type": "header", "format": "sertools-stream", "version": 1,
            "producer": producer, "producer_version": VERSION,
            "argv": list(argv or [producer]), "params": params, "history": []}


def write_stream(path, header, items):
    """Writes header, items ({'key', 'tensors', 'fields'} dicts) and the end
    record; the file appears atomically."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as out:
            pack = msgpack.Packer(default=msgpack_numpy.encode, use_bin_type=True)
            out.write(pack.pack(header))
            n = 0
            for it in items:
                rec = {"type": "item", "key": it["key"],
                       "tensors": {k: _c_order(v) for k, v in it.get("tensors", {}).items()}}
                if it.get("fields"):
                    rec["fields"] = it["fields"]
                out.write(pack.pack(rec))
                n += 1
            out.write(pack.pack({"type": "end", "count": n}))
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_checkpoint(path):
    """(header, OrderedDict name -> numpy array) in stream order."""
    header, items, _ = read_stream(path)
    sd = OrderedDict()
    for rec in items:
        if rec["key"] in sd:
            raise ValueError(f"{path}: duplicate tensor {rec['key']}")
        sd[rec["key"]] = rec["tensors"]["value"]
    return header, sd


def to_torch(sd):
    import torch
    return OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in sd.items())


def load_into(model, path):
    """Loads a checkpoint into a torch module, strictly (names and shapes);
    returns the header."""
    header, sd = read_checkpoint(path)
    model.load_state_dict(to_torch(sd), strict=True)
    return header


def model_params(classes, width_div, class_names=None, n_mels=64):
    names = list(class_names) if class_names is not None else [str(i) for i in range(classes)]
    return {"arch": "Cnn14", "classes": classes, "class_names": names,
            "width_div": width_div, "n_mels": n_mels}


def write_checkpoint(path, state_dict, model, producer="cnn14_ref.py", extra_params=None):
    """Writes a torch (or numpy) state dict in its own order: float32 tensors,
    num_batches_tracked as a 0-dim int64."""
    params = {"model": model}
    params.update(extra_params or {})
    items = []
    for name, t in state_dict.items():
        a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
        if name.endswith("num_batches_tracked"):
            a = np.asarray(a, dtype="<i8").reshape(())
        else:
            a = a.astype("<f4", copy=False)
        items.append({"key": name, "tensors": {"value": a}})
    write_stream(path, make_header(producer, params), items)


def write_batch(path, logmel, labels=None, keys=None):
    """A batch stream: one item per row of logmel (B, T, n_mels), with an
    int field label when labels are given."""
    logmel = np.asarray(logmel, dtype=np.float32)
    items = []
    for i in range(logmel.shape[0]):
        it = {"key": keys[i] if keys else f"x{i:03d}", "tensors": {"logmel": logmel[i]}}
        if labels is not None:
            it["fields"] = {"label": int(labels[i])}
        items.append(it)
    write_stream(path, make_header("cnn14_ref.py", {"tensor": "logmel"}), items)
