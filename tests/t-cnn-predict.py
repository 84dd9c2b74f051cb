"""cnn-predict against PyTorch: posteriors, predictions and embeddings of
unlabelled items, scored whole and alone.

Model: `cnn-tool init --classes 3 --width-div 16`, loaded strictly into the
PyTorch reference, BatchNorm running statistics randomised
(R.randomize_state, bn0 near the input's statistics) so that eval-mode
activations depend on the input; written back with class names and the
melspec map of a real melspec run.

Checks:
  - TSV: header 'key predicted p_low p_mid p_high', one line per item in
    stream order; posteriors against PyTorch (eval mode, whole item) to
    1e-4 relative (float32 both sides, printed with 6 significant digits:
    5e-6), 'predicted' the argmax; items of 32..700 frames, unlabelled;
  - --stream --embedding: tensor 'posteriors' (1e-4) and 'embedding' =
    ReLU(fc1) of PyTorch (PANNs' embedding output; 1e-4 of its max), the
    item's other fields kept, params.predict.classes the model's names;
  - --pad-short: an item of 20 frames scored as PyTorch scores it padded with
    (20/power)*log10(amin) to 32 frames; without it exit 2 naming the item;
  - refusals: no params.melspec (exit 2), melspec settings that differ (exit
    2, the message names the setting), --embedding without --stream (exit 1),
    a truncated stream (exit 2, no output file);
  - the README's one-liner: audio-read WAV | melspec | cnn-predict CKPT.
"""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("torch")
import torch  # noqa: E402

import ckpt  # noqa: E402
import cnn14_ref as R  # noqa: E402
import tones  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-4
NAMES = ["low", "mid", "high"]
K = len(NAMES)
LENGTHS = [32, 45, 100, 700, 64, 33]

# The melspec map of a real run, so that the one-liner below matches it.
tones.write_tone("tone.wav", np.random.default_rng(1), 900.0, 1.0, 1.0)
T.run(["sh", "-c", "audio-read tone.wav | melspec > tone.msgpack"])
MEL = ckpt.read_stream("tone.msgpack")[0]["params"]["melspec"]

R.cnn_tool("init", "--classes", K, "--width-div", 16, "--seed", 9, "-o", "init.ckpt")
model = R.Cnn14(K, 16, dropout=False)
ckpt.load_into(model, "init.ckpt")
g = torch.Generator().manual_seed(3)
base = -60 + 30 * torch.rand(64, generator=g)
xs = [(base + 10 * torch.randn(n, 64, generator=g)).float() for n in LENGTHS]
flat = torch.cat(xs)
R.randomize_state(model, 5, flat.mean(0), flat.var(0))
model.eval()
# an output layer whose logits spread over the classes, so that items differ in their prediction
f = R.head_inputs(model, xs)
with torch.no_grad():
    model.fc_transfer.weight.copy_(torch.randn(K, f.shape[1], generator=g))
    model.fc_transfer.weight.mul_(1.5 / (f @ model.fc_transfer.weight.T).std(0).mean())
    logits = f @ model.fc_transfer.weight.T
    model.fc_transfer.bias.copy_(-logits.mean(0))
ckpt.write_checkpoint("model.ckpt", model.state_dict(), ckpt.model_params(K, 16, NAMES), producer="t-cnn-predict",
                      extra_params={"melspec": MEL, "task": "arousal"})
emb = []
hook = model.fc1.register_forward_hook(lambda mod, i, o: emb.append(torch.relu(o[0]).clone()))
with torch.no_grad():
    ref = np.stack([model(x[None])[0].double().numpy() for x in xs])
hook.remove()
ref_emb = torch.stack(emb).double().numpy()
keys = [f"rec{i}" for i in range(len(xs))]
items = [{"key": k, "tensors": {"logmel": x.numpy()}, "fields": {"speaker": f"s{i % 2}"}}
         for i, (k, x) in enumerate(zip(keys, xs))]
HDR = {"tensor": "logmel", "melspec": MEL}
ckpt.write_stream("feats.msgpack", ckpt.make_header("t-cnn-predict", HDR), items)


def rel(got, want):
    return float(np.max(np.abs(got - np.exp(want)) / np.exp(want)))


# ---- TSV ----
out = T.run(["cnn-predict", "model.ckpt", "feats.msgpack"]).stdout.splitlines()
T.check(out[0].split("\t") == ["key", "predicted"] + [f"p_{n}" for n in NAMES], f"TSV header {out[0]!r}")
rows = [line.split("\t") for line in out[1:]]
T.check([r[0] for r in rows] == keys, f"keys {[r[0] for r in rows]}")
post = np.array([[float(v) for v in r[2:]] for r in rows])
d = rel(post, ref)
print(f"TSV posteriors vs PyTorch: max relative difference {d:.2e} (tolerance {TOL:g})")
T.check(d <= TOL, f"TSV posteriors differ by {d:.3e}")
T.check([r[1] for r in rows] == [NAMES[k] for k in ref.argmax(1)], f"predicted {[r[1] for r in rows]}")
T.check(len(set(ref.argmax(1))) > 1, f"setup: every item predicts class {ref.argmax(1)}; the test would be weak")

# ---- stream with embeddings ----
T.run(["cnn-predict", "--stream", "--embedding", "-o", "pred.msgpack", "model.ckpt", "feats.msgpack"])
hdr, got, _ = ckpt.read_stream("pred.msgpack")
T.check(hdr["params"]["predict"]["classes"] == NAMES, f"params.predict {hdr['params'].get('predict')}")
T.check([it["key"] for it in got] == keys, "stream keys")
T.check(all(it["fields"]["speaker"] == f"s{i % 2}" for i, it in enumerate(got)), "fields not kept")
T.check(all("logmel" not in it["tensors"] for it in got), "the input tensor is passed on")
p = np.stack([it["tensors"]["posteriors"] for it in got]).astype(np.float64)
e = np.stack([it["tensors"]["embedding"] for it in got]).astype(np.float64)
d = rel(p, ref)
de = float(np.max(np.abs(e - ref_emb)) / np.max(np.abs(ref_emb)))
print(f"stream posteriors {d:.2e}, embedding {de:.2e} (shape {e.shape}) vs PyTorch")
T.check(d <= TOL and de <= TOL, f"stream posteriors {d:.3e} / embedding {de:.3e} > {TOL:g}")
T.check(e.shape == (len(xs), 2048 // 16), f"embedding shape {e.shape}")
T.check([it["fields"]["predicted"] for it in got] == [NAMES[k] for k in ref.argmax(1)], "stream predicted")

# ---- short items (a front end with another floor: amin 1e-8 pads with -80 dB, not -100) ----
MEL8 = dict(MEL, amin=1e-8)
PAD = (20 / MEL8["power"]) * math.log10(MEL8["amin"])
ckpt.write_checkpoint("model8.ckpt", model.state_dict(), ckpt.model_params(K, 16, NAMES), producer="t-cnn-predict",
                      extra_params={"melspec": MEL8})
short = (base + 10 * torch.randn(20, 64, generator=g)).float()
ckpt.write_stream("short.msgpack", ckpt.make_header("t", dict(HDR, melspec=MEL8)),
                  [{"key": "s", "tensors": {"logmel": short.numpy()}}])
r = T.run(["cnn-predict", "model8.ckpt", "short.msgpack"], code=2)
T.check("'s'" in r.stderr and "--pad-short" in r.stderr, f"short item message: {r.stderr!r}")
row = T.run(["cnn-predict", "--pad-short", "model8.ckpt", "short.msgpack"]).stdout.splitlines()[1].split("\t")
with torch.no_grad():
    want = model(torch.cat([short, torch.full((12, 64), PAD)])[None])[0].double().numpy()
    other = model(torch.cat([short, torch.full((12, 64), -100.0)])[None])[0].double().numpy()
d = rel(np.array([float(v) for v in row[2:]]), want[None])
T.check(d <= TOL, f"padded item differs from PyTorch padded with {PAD} dB by {d:.3e}")
T.check(rel(np.exp(want), other[None]) > 10 * TOL, "setup: the pad value does not change the result")

# ---- refusals ----
ckpt.write_stream("nomel.msgpack", ckpt.make_header("t", {"tensor": "logmel"}), items)
r = T.run(["cnn-predict", "model.ckpt", "nomel.msgpack"], code=2)
T.check("params.melspec" in r.stderr, f"no melspec: {r.stderr!r}")
other = dict(MEL, n_fft=1024)
ckpt.write_stream("other.msgpack", ckpt.make_header("t", {"tensor": "logmel", "melspec": other}), items)
r = T.run(["cnn-predict", "model.ckpt", "other.msgpack"], code=2)
T.check("n_fft 1024 in the stream, 512 in the checkpoint" in r.stderr, f"melspec mismatch: {r.stderr!r}")
r = T.run(["cnn-predict", "--embedding", "model.ckpt", "feats.msgpack"], code=1)
T.check("--stream" in r.stderr and "Try 'cnn-predict --help'" in r.stderr, f"usage: {r.stderr!r}")
data = open("feats.msgpack", "rb").read()
open("cut.msgpack", "wb").write(data[: len(data) - 9])
r = T.run(["cnn-predict", "-o", "cut.tsv", "model.ckpt", "cut.msgpack"], code=2)
T.check(not os.path.exists("cut.tsv"), "a truncated input left an output file")

# ---- the README's one-liner ----
r = T.run(["sh", "-c", "audio-read tone.wav | melspec | cnn-predict model.ckpt"])
lines = r.stdout.splitlines()
T.check(len(lines) == 2 and lines[1].split("\t")[1] in NAMES, f"one-liner output {lines}")
T.done()
