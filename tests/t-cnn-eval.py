"""cnn-eval against PyTorch (posteriors) and scikit-learn (metrics).

Model: `cnn-tool init --classes 4 --width-div 16`, loaded strictly into the
PyTorch reference (tests/ref/cnn14_ref.py); its BatchNorm running statistics
are then measured on the test items (so that eval-mode activations are
neither dead nor saturated and the output depends on the input), BN weights
and biases randomised, and the output layer scaled and biased so that
classes 0, 1 and 3 are each predicted and class 2 is never predicted
(bias -30).  Labels use classes 0..2 only: class 3 ("angry") is absent from
the labels but predicted, class 2 ("sad") is present but never predicted.
The checkpoint is written back with class names and a melspec map.

Stream: 25 items of 32..128 frames written by Python, with runs of equal
lengths (5 x 40, 5 x 45, 4 x 64, 2 x 90) so that batches of several items
form; a second stream adds items of 20 and 31 frames for --pad-short.

Checks:
  - posteriors (exp of the log-probabilities) against PyTorch in eval mode,
    one item at a time on the whole item: |c - r| / r <= 1e-4 for every
    class (float32 on both sides); padded items against PyTorch on the item
    padded with 10*log10(amin) of the stream's melspec params;
  - 'predicted' is the argmax of the posteriors; keys, labels, order, the
    header (params.classes from the checkpoint, tensor 'posteriors');
  - UAR = recall_score(labels=<classes present>, average='macro'), accuracy,
    per-class recall (NA for the absent class), support, predicted counts and
    confusion_matrix from scikit-learn on cnn-eval's predictions: 1e-12 for
    JSON (exact doubles), 1e-8 relative for TSV (9 significant digits); NLL
    against PyTorch to 1e-5 relative;
  - scikit-learn's plain macro average (which counts the predicted but absent
    class as 0) differs: the rule is the documented one, not an accident;
  - batching: --threads 1 and 2 give bitwise the default's posteriors; with
    --batch 1 an item's posteriors are bitwise the same alone or in the whole
    stream; --batch 3 and the default (32) agree with --batch 1 to 2e-5
    relative with the same predictions (OpenBLAS rounds a batched GEMM's
    columns differently from a single item's, so bitwise is not possible);
    batches are runs of --batch equal-length items in stream order, also
    across cnn-eval's progress chunks;
  - stdin input, -o (atomic report file) with --posteriors - on stdout.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("torch")
T.require_module("sklearn.metrics")
import torch  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score  # noqa: E402

import ckpt  # noqa: E402
import cnn14_ref as R  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-4
NAMES = ["neutral", "happy", "sad", "angry"]
K = len(NAMES)
MEL = {"sample_rate": 16000, "n_fft": 512, "win_length": 512, "hop_length": 160, "n_mels": 64,
       "f_min": 50.0, "f_max": 8000.0, "window": "hann-periodic", "center": True, "pad_mode": "reflect",
       "power": 2.0, "mel_scale": "slaney", "norm": "slaney", "db": True, "amin": 1e-8, "top_db": None}
PAD = np.float32(10 * math.log10(MEL["amin"]))  # -80 dB: the log-Mel of digital silence
LENGTHS = [40, 40, 40, 40, 40, 33, 57, 64, 64, 64, 100, 32, 45, 45, 45, 45, 45, 77, 128, 90, 90, 52, 36, 64, 71]
SHORT = [20, 31]


def cnn_eval(*args, ok=True, stdin=None):
    return T.run(["cnn-eval", *args], stdin=stdin, code=0 if ok else None, text=False)


# ---- the model ----
R.cnn_tool("init", "--classes", K, "--width-div", 16, "--seed", 5, "-o", "init.ckpt")
model = R.Cnn14(K, 16, dropout=False)
ckpt.load_into(model, "init.ckpt")
g = torch.Generator().manual_seed(11)
base = -40 + 30 * torch.rand(64, generator=g)
xs = [(base + 10 * torch.randn(n, 64, generator=g)).float() for n in LENGTHS]
shorts = [(base + 10 * torch.randn(n, 64, generator=g)).float() for n in SHORT]
bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
model.train()
for m in bns:
    m.momentum = None  # cumulative average: the running statistics of these items
    m.reset_running_stats()
with torch.no_grad():
    for x in xs:
        model(x[None])
    for m in bns:
        m.momentum = 0.1
        m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
        m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
model.eval()
feats = R.head_inputs(model, xs)
with torch.no_grad():
    logits = feats @ model.fc_transfer.weight.T
    model.fc_transfer.weight.mul_(1.5 / logits.std(0).mean())
    logits = feats @ model.fc_transfer.weight.T
    model.fc_transfer.bias.copy_(-logits.mean(0))
    model.fc_transfer.bias[2] = -30.0  # "sad" is never predicted
    ref = torch.stack([model(x[None])[0] for x in xs]).double().numpy()
    ref_short = [model(torch.cat([x, torch.full((32 - len(x), 64), float(PAD))])[None])[0].double().numpy()
                 for x in shorts]
ckpt.write_checkpoint("model.ckpt", model.state_dict(), ckpt.model_params(K, 16, NAMES), producer="t-cnn-eval",
                      extra_params={"melspec": MEL, "task": "category"})

# ---- the stream ----
rng = np.random.default_rng(4)
labels = rng.integers(0, 3, len(xs))  # classes 0..2; "angry" never occurs
labels[:3] = [0, 1, 2]
keys = [f"utt{i:02d}" for i in range(len(xs))]


def stream(path, xs_, labels_, keys_):
    items = [{"key": k, "tensors": {"logmel": x.numpy()}, "fields": {"label": int(y), "class": NAMES[y]}}
             for k, x, y in zip(keys_, xs_, labels_)]
    hdr = ckpt.make_header("t-cnn-eval", {"tensor": "logmel", "melspec": MEL, "task": "category", "classes": NAMES})
    ckpt.write_stream(path, hdr, items)


stream("test.msgpack", xs, labels, keys)

# setup checks: the edge cases are really there
ref_pred = ref.argmax(1)
assert set(ref_pred) == {0, 1, 3}, ref_pred
assert 2 in labels and 3 not in labels, labels
top2 = np.sort(ref, 1)[:, -2:]
assert (top2[:, 1] - top2[:, 0]).min() > 1e-3, "a near-tie would make argmax fragile"

# ---- posteriors against PyTorch ----
cnn_eval("--posteriors", "post.msgpack", "-o", "report.tsv", "model.ckpt", "test.msgpack")
hdr, items, _ = ckpt.read_stream("post.msgpack")
assert hdr["params"]["classes"] == NAMES and hdr["params"]["tensor"] == "posteriors", hdr["params"]
assert hdr["params"]["melspec"]["n_fft"] == 512, hdr["params"]
assert [it["key"] for it in items] == keys
post = np.stack([it["tensors"]["posteriors"] for it in items])
assert post.dtype == np.float32 and post.shape == (len(xs), K), (post.dtype, post.shape)
got_labels = np.array([it["fields"]["label"] for it in items])
pred = np.array([it["fields"]["predicted"] for it in items])
assert (got_labels == labels).all()
assert (pred == post.argmax(1)).all(), (pred, post.argmax(1))
rel = np.abs(post.astype(np.float64) - np.exp(ref)) / np.exp(ref)
print(f"posteriors vs PyTorch: max elementwise relative difference {rel.max():.2e} (tolerance {TOL:g})")
if rel.max() > TOL:
    T.fail(f"posteriors: relative difference {rel.max():.3e} > {TOL:g}")

# ---- metrics against scikit-learn ----
present = sorted(set(labels.tolist()))
want = {
    "uar": recall_score(labels, pred, labels=present, average="macro", zero_division=0),
    "accuracy": accuracy_score(labels, pred),
    "recall": recall_score(labels, pred, labels=list(range(K)), average=None, zero_division=0),
    "confusion": confusion_matrix(labels, pred, labels=list(range(K))),
    "nll": -np.mean(ref[np.arange(len(xs)), labels]),
}
sk_macro = recall_score(labels, pred, average="macro", zero_division=0)
print(f"UAR {want['uar']:.6f} (scikit-learn's plain macro average {sk_macro:.6f}), accuracy {want['accuracy']:.6f}")
assert abs(sk_macro - want["uar"]) > 1e-3, "the absent class should make the plain macro average differ"


def close(a, b, tol):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol * max(1, abs(b)))


def check_report(name, rep, tol):
    def expect(what, got, exp, t=tol):
        if not close(got, exp, t):
            T.fail(f"{name}: {what} {got} != {exp}")
    expect("uar", rep["uar"], want["uar"])
    expect("accuracy", rep["accuracy"], want["accuracy"])
    expect("nll", rep["nll"], want["nll"], 1e-5)
    if rep["items"] != len(xs) or rep["classes"] != NAMES or rep["classes_present"] != len(present):
        T.fail(f"{name}: items/classes {rep['items']} {rep['classes']} {rep['classes_present']}")
    for k in range(K):
        pc = rep["per_class"][k]
        expect(f"recall {k}", pc["recall"], want["recall"][k] if k in present else None)
        if pc["class"] != NAMES[k] or pc["support"] != int((labels == k).sum()) or pc["predicted"] != int((pred == k).sum()):
            T.fail(f"{name}: per-class row {pc}")
    if (np.array(rep["confusion"]) != want["confusion"]).any():
        T.fail(f"{name}: confusion {rep['confusion']} != {want['confusion'].tolist()}")


def parse_tsv(text):
    blocks = [b.splitlines() for b in text.rstrip("\n").split("\n\n")]
    assert len(blocks) == 3, blocks
    assert blocks[0][0] == "metric\tvalue" and blocks[1][0] == "class\trecall\tsupport\tpredicted", blocks
    num = lambda s: None if s == "NA" else float(s)
    m = dict(line.split("\t") for line in blocks[0][1:])
    assert list(m) == ["items", "classes", "classes_present", "uar", "accuracy", "nll"], list(m)
    rep = {"items": int(m["items"]), "classes_present": int(m["classes_present"]), "uar": num(m["uar"]),
           "accuracy": num(m["accuracy"]), "nll": num(m["nll"])}
    rows = [line.split("\t") for line in blocks[1][1:]]
    rep["classes"] = [r[0] for r in rows]
    rep["per_class"] = [{"class": r[0], "recall": num(r[1]), "support": int(r[2]), "predicted": int(r[3])} for r in rows]
    head = blocks[2][0].split("\t")
    assert head == ["true\\predicted"] + NAMES, head
    mat = [line.split("\t") for line in blocks[2][1:]]
    assert [r[0] for r in mat] == NAMES, mat
    rep["confusion"] = [[int(v) for v in r[1:]] for r in mat]
    return rep


tsv = open("report.tsv").read()
check_report("TSV", parse_tsv(tsv), 1e-8)
assert "sad\t0\t" in tsv and "angry\tNA\t0\t" in tsv, tsv  # never predicted: recall 0; absent: NA
js = json.loads(cnn_eval("--json", "model.ckpt", "test.msgpack").stdout)
check_report("JSON", js, 1e-12)
assert js["checkpoint"] == "model.ckpt" and js["stream"] == "test.msgpack", js
assert js["per_class"][3]["recall"] is None and js["per_class"][2]["recall"] == 0.0, js["per_class"]

# ---- batching: what it may and may not change ----
# OpenBLAS's sgemm rounds a column differently depending on the matrix width
# (its kernels differ for edge tiles), so a batch of several items can differ
# from one-at-a-time scoring in the last bits: allowed up to 2e-5 relative
# (a fifth of the reference tolerance), with identical predictions.  The
# thread count changes nothing (bitwise), and with --batch 1 an item's result
# is a function of the item alone (bitwise).
def posteriors_of(*opts, stream_path="test.msgpack"):
    cnn_eval(*opts, "-p", "alt.msgpack", "model.ckpt", stream_path)
    return np.stack([it["tensors"]["posteriors"] for it in ckpt.read_stream("alt.msgpack")[1]])


for opts in (["--threads", "1"], ["--threads", "2"]):
    if posteriors_of(*opts).tobytes() != post.tobytes():
        T.fail(f"{' '.join(opts)}: posteriors differ from the default run")
one = posteriors_of("--batch", "1")
for name, alt in (("--batch 3", posteriors_of("--batch", "3")), ("default --batch 32", post)):
    d = (np.abs(alt.astype(np.float64) - one) / one).max()
    print(f"{name} vs --batch 1: max relative difference {d:.2e}")
    if d > 2e-5 or (alt.argmax(1) != one.argmax(1)).any():
        T.fail(f"{name}: posteriors differ from --batch 1 by {d:.3e} (> 2e-5) or in argmax")
stream("alone.msgpack", [xs[8]], [labels[8]], [keys[8]])  # a 64-frame item, one of four in test.msgpack
if posteriors_of("--batch", "1", stream_path="alone.msgpack").tobytes() != one[8:9].tobytes():
    T.fail("--batch 1: an item scored alone differs from the same item in the whole stream")
base_bytes = post.tobytes()

# The batches are runs of --batch items of one length in stream order, as
# evaluate_dataset (and so cnn-train) forms them, also where cnn-eval cuts the
# set into chunks for progress (a chunk has at least 16 items): with 20 items
# of 33 frames and --batch 3, items 15..17 form one batch, whose results are
# those of a stream of these three items alone.
run33 = [(base + 10 * torch.randn(33, 64, generator=g)).float() for _ in range(20)]
stream("run33.msgpack", run33, [0] * 20, [f"r{i:02d}" for i in range(20)])
whole = posteriors_of("--batch", "3", stream_path="run33.msgpack")
stream("run33-part.msgpack", run33[15:18], [0] * 3, ["r15", "r16", "r17"])
if posteriors_of("--batch", "3", stream_path="run33-part.msgpack").tobytes() != whole[15:18].tobytes():
    T.fail("--batch 3: items 15..17 of a run of 20 equal lengths were not scored as one batch")

# ---- stdin, --posteriors - with -o ----
r = cnn_eval("--posteriors", "-", "-o", "report2.tsv", "model.ckpt", stdin="test.msgpack")
with open("stdout.msgpack", "wb") as f:
    f.write(r.stdout)
alt = np.stack([it["tensors"]["posteriors"] for it in ckpt.read_stream("stdout.msgpack")[1]])
assert alt.tobytes() == base_bytes
assert open("report2.tsv").read() == tsv
assert not [f for f in os.listdir(".") if f.startswith(".")], os.listdir(".")

# ---- short items: padded with the log-Mel of silence ----
stream("short.msgpack", xs[:3] + shorts, [0, 1, 2, 0, 1], keys[:3] + ["short20", "short31"])
r = cnn_eval("model.ckpt", "short.msgpack", ok=False)
assert r.returncode == 2 and b"short20" in r.stderr and b"--pad-short" in r.stderr, r.stderr
cnn_eval("--pad-short", "-p", "spost.msgpack", "model.ckpt", "short.msgpack")
sp = np.stack([it["tensors"]["posteriors"] for it in ckpt.read_stream("spost.msgpack")[1]])
want_short = np.exp(np.concatenate([ref[:3], np.stack(ref_short)]))
rel = (np.abs(sp - want_short) / want_short).max()
print(f"padded items vs PyTorch: max elementwise relative difference {rel:.2e}")
if rel > TOL:
    T.fail(f"--pad-short posteriors: relative difference {rel:.3e} > {TOL:g}")

T.done()
