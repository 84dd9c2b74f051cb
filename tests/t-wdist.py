"""wdist against numpy (float64) on checkpoint streams written by Python.

Checks: every layer's cosine distance to 1e-12 absolute (both accumulate in
double), exactly 0 between identical layers, network order, the output layer left out when the class count
differs, zero-norm layers reported as NA, --json, --all, and the errors for
a shape mismatch, a different width, a missing layer and a non-checkpoint.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import msgpack  # noqa: E402
import msgpack_numpy as m  # noqa: E402
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

rng = np.random.default_rng(3)
CH = [4, 8, 16, 32, 64, 128]


def names_shapes(classes, ch=CH):
    out = []
    bn = lambda p, c: [(f"{p}.weight", (c,)), (f"{p}.bias", (c,)), (f"{p}.running_mean", (c,)),
                       (f"{p}.running_var", (c,)), (f"{p}.num_batches_tracked", ())]
    out += bn("bn0", 64)
    cin = 1
    for b, c in enumerate(ch, 1):
        out += [(f"conv_block{b}.conv1.weight", (c, cin, 3, 3)), (f"conv_block{b}.conv2.weight", (c, c, 3, 3))]
        out += bn(f"conv_block{b}.bn1", c) + bn(f"conv_block{b}.bn2", c)
        cin = c
    out += [("fc1.weight", (ch[-1], ch[-1])), ("fc1.bias", (ch[-1],)),
            ("fc_transfer.weight", (classes, ch[-1])), ("fc_transfer.bias", (classes,))]
    return out


def write_ckpt(path, tensors, classes, width_div=16):
    with open(path, "wb") as f:
        p = lambda o: f.write(msgpack.packb(o, default=m.encode, use_bin_type=True))
        p({"type": "header", "format": "sertools-stream", "version": 1, "producer": "test",
           "params": {"model": {"arch": "Cnn14", "classes": classes, "width_div": width_div, "n_mels": 64}}})
        for k, v in tensors.items():
            p({"type": "item", "key": k, "tensors": {"value": v}})
        p({"type": "end", "count": len(tensors)})


def make(classes, base=None, noise=0.1):
    t = {}
    for k, shape in names_shapes(classes):
        if k.endswith("num_batches_tracked"):
            t[k] = np.array(5, dtype=np.int64)
        elif base is not None and k in base and base[k].shape == shape:
            t[k] = (base[k] + noise * rng.standard_normal(shape)).astype(np.float32)
        else:
            t[k] = rng.standard_normal(shape).astype(np.float32)
        if k.endswith("running_var"):
            t[k] = np.abs(t[k])     # a variance (negative ones are refused)
    return t


def cosd(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return 1 - a.dot(b) / (np.linalg.norm(a) * np.linalg.norm(b))


def wdist(*args, ok=True):
    return T.run(["wdist", *args], code=0 if ok else None)


ref = make(3)
best = make(3, ref, 0.05)
last = make(3, ref, 0.3)
write_ckpt("init.ckpt", ref, 3)
write_ckpt("best.ckpt", best, 3)
write_ckpt("last.ckpt", last, 3)

out = wdist("init.ckpt", "best.ckpt", "last.ckpt").stdout.splitlines()
assert out[0] == "layer\tbest.ckpt\tlast.ckpt", out[0]
want_layers = [k[:-7] for k, s in names_shapes(3) if k.endswith(".weight") and len(s) in (2, 4)]
got_layers = [line.split("\t")[0] for line in out[1:]]
assert got_layers == want_layers, got_layers
for line in out[1:]:
    name, d1, d2 = line.split("\t")
    for d, ck in ((d1, best), (d2, last)):
        want = cosd(ref[name + ".weight"], ck[name + ".weight"])
        assert abs(float(d) - want) <= 1e-12 + 1e-8 * abs(want), (name, d, want)

# --all covers BN parameters and biases too; --json
js = json.loads(wdist("--all", "--json", "init.ckpt", "best.ckpt").stdout)
names = [l["layer"] for l in js["layers"]]
assert "conv_block3.bn2.running_var" in names and "fc1.bias" in names, names
for l in js["layers"]:
    want = cosd(ref[l["layer"]], best[l["layer"]])
    assert abs(l["distance"][0] - want) <= 1e-12 + 1e-8 * abs(want), l

# an unchanged layer is exactly 0 (wdist(1)): what a frozen layer looks like
# in Fig. 3 and in the study's linear-only checks, not a rounding residue
for args in (["init.ckpt", "init.ckpt", "best.ckpt"], ["--all", "best.ckpt", "best.ckpt"]):
    rows = [line.split("\t") for line in wdist(*args).stdout.splitlines()[1:]]
    for row in rows:
        T.check(row[1] == "0", f"wdist {' '.join(args)}: {row[0]}: distance to itself {row[1]}, not 0")

# a new head (5 classes): the output layer is left out, the rest compared
five = make(5, ref, 0.05)
write_ckpt("five.ckpt", five, 5)
r = wdist("init.ckpt", "five.ckpt")
assert "fc_transfer" not in r.stdout and "fc1" in r.stdout, r.stdout
assert "left out" in r.stderr, r.stderr

# zero norm: NA, not a division by zero
z = dict(best)
z["conv_block2.conv1.weight"] = np.zeros_like(z["conv_block2.conv1.weight"])
write_ckpt("zero.ckpt", z, 3)
r = wdist("init.ckpt", "zero.ckpt")
row = [l for l in r.stdout.splitlines() if l.startswith("conv_block2.conv1\t")][0]
assert row.endswith("\tNA"), row
assert "zero norm" in r.stderr, r.stderr

# NaN weights are an error naming the tensor, not a "zero norm" warning
n = dict(best)
n["conv_block2.conv1.weight"] = n["conv_block2.conv1.weight"].copy()
n["conv_block2.conv1.weight"][0, 0, 1, 1] = np.nan
write_ckpt("nan.ckpt", n, 3)
r = wdist("init.ckpt", "nan.ckpt", ok=False)
assert r.returncode == 2 and r.stderr == "wdist: nan.ckpt: conv_block2.conv1.weight: element 4 is NaN\n", r.stderr
assert r.stdout == "", r.stdout

# the checkpoint rules (formats/checkpoint.md), subset form: a duplicate, an
# extra tensor, a header class count the shapes disagree with, a wrong
# num_batches_tracked shape; each names the tensor
def refused(name, tensors, classes, want):
    write_ckpt(name, tensors, classes)
    r = wdist("init.ckpt", name, ok=False)
    assert r.returncode == 2 and r.stderr == f"wdist: {name}: {want}\n", r.stderr
with open("dup.ckpt", "wb") as f:
    p = lambda o: f.write(msgpack.packb(o, default=m.encode, use_bin_type=True))
    p({"type": "header", "format": "sertools-stream", "version": 1, "producer": "test",
       "params": {"model": {"arch": "Cnn14", "classes": 3, "width_div": 16, "n_mels": 64}}})
    items = list(best.items()) + [("fc1.weight", best["fc1.weight"])]
    for k, v in items:
        p({"type": "item", "key": k, "tensors": {"value": v}})
    p({"type": "end", "count": len(items)})
r = wdist("init.ckpt", "dup.ckpt", ok=False)
assert r.returncode == 2 and r.stderr == "wdist: dup.ckpt: tensor 'fc1.weight' appears twice\n", r.stderr
refused("extra.ckpt", dict(best, **{"fc2.weight": best["fc1.weight"]}), 3,
        "tensor 'fc2.weight' is not part of the model")
refused("classes.ckpt", best, 4, "fc_transfer.weight: shape (3, 128) in the checkpoint, (4, 128) in the model")
refused("nbt.ckpt", dict(best, **{"bn0.num_batches_tracked": np.array([5], dtype=np.int64)}), 3,
        "bn0.num_batches_tracked: shape (1,) in the checkpoint, () in the model")
refused("many.ckpt", best, 30000, "30000 classes in params.model, outside [1, 4096] (formats/limits.md)")
# a subset (no output layer) is compared on what it has
body = {k: v for k, v in best.items() if not k.startswith("fc_transfer")}
write_ckpt("body.ckpt", body, 3)
r = wdist("init.ckpt", "body.ckpt")
assert "fc1\t" in r.stdout, r.stdout
# --check: the full rules, silent on success
assert wdist("--check", "init.ckpt", "best.ckpt").stdout == ""
r = wdist("--check", "body.ckpt", ok=False)
assert r.returncode == 2 and r.stderr == "wdist: body.ckpt: the checkpoint lacks 'fc_transfer.weight'\n", r.stderr
js = json.loads(wdist("--json", "init.ckpt", "zero.ckpt").stdout)
assert [l for l in js["layers"] if l["layer"] == "conv_block2.conv1"][0]["distance"] == [None]

# errors name the layer / the reason, exit 2
bad = dict(best)
bad["conv_block4.conv2.weight"] = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
write_ckpt("badshape.ckpt", bad, 3)
r = wdist("init.ckpt", "badshape.ckpt", ok=False)
assert r.returncode == 2 and "conv_block4.conv2" in r.stderr, r.stderr
write_ckpt("width.ckpt", best, 3, width_div=8)
r = wdist("init.ckpt", "width.ckpt", ok=False)
assert r.returncode == 2 and "width_div" in r.stderr, r.stderr
missing = dict(best)
del missing["fc1.weight"]
write_ckpt("missing.ckpt", missing, 3)
r = wdist("init.ckpt", "missing.ckpt", ok=False)
assert r.returncode == 2 and "fc1.weight" in r.stderr, r.stderr
with open("notckpt.msgpack", "wb") as f:
    f.write(msgpack.packb({"type": "header", "format": "sertools-stream", "version": 1, "params": {}}))
    f.write(msgpack.packb({"type": "end", "count": 0}))
r = wdist("notckpt.msgpack", "best.ckpt", ok=False)
assert r.returncode == 2 and "not a checkpoint" in r.stderr, r.stderr
r = wdist("init.ckpt", ok=False)
assert r.returncode == 1, r
# output file written atomically
wdist("-o", "dist.tsv", "init.ckpt", "best.ckpt")
assert open("dist.tsv").read().startswith("layer\tbest.ckpt")
assert not [f for f in os.listdir(".") if f.startswith(".dist")], os.listdir(".")
T.done()
