#!/usr/bin/env python3
"""Probe, not part of the engine: do MiniLM embeddings fine-tuned on the policy's own texts
(SetFit: a cosine-similarity loss on pairs of texts of the same node and of different nodes)
read unseen player lines better than the frozen ones the rails use today? Both are read by
one-vs-rest logistic heads taught only the policy, as the rails' topic heads are.

Usage (a virtual environment with torch, safetensors and tokenizers from PyPI):
  [TRAIN_LAYERS=4,5] [LR=1e-4] [SKIP_FROZEN=1] probe_setfit.py SET[,SET...] [ROUNDS]
SETs are names under world/eval/ without .tsv. For each threshold it prints the share of lines
about a topic whose own head fires and the share of `-` lines on which no head fires, then the
first share at the thresholds where 3, 5 and 10% of `-` lines fire some head. The encoder is
all-MiniLM-L6-v2 from the set-up's cache, written out here as the Rust encoder is.
"""

import json
import math
import os
import random
import re
import sys
import time

import torch, torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer

torch.manual_seed(0)
random.seed(0)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
M = os.environ.get(
    "LORE_ENCODER", os.path.expanduser("~/.cache/lorekeeper/models/all-minilm-l6-v2")
)
W = load_file(f"{M}/model.safetensors")
tok = Tokenizer.from_file(f"{M}/tokenizer.json")
tok.enable_padding(pad_id=0)
tok.enable_truncation(128)


class MiniLM(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.p = torch.nn.ParameterDict(
            {
                k.replace(".", "__"): torch.nn.Parameter(v.float().clone())
                for k, v in w.items()
                if k != "embeddings.position_ids"
            }
        )

    def g(self, k):
        return self.p[k.replace(".", "__")]

    def ln(self, x, k):
        return F.layer_norm(x, (384,), self.g(k + ".weight"), self.g(k + ".bias"), 1e-12)

    def lin(self, x, k):
        return F.linear(x, self.g(k + ".weight"), self.g(k + ".bias"))

    def forward(self, ids, mask):
        b, n = ids.shape
        x = (
            self.g("embeddings.word_embeddings.weight")[ids]
            + self.g("embeddings.position_embeddings.weight")[:n]
            + self.g("embeddings.token_type_embeddings.weight")[0]
        )
        x = self.ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].float()) * -1e9
        for l in range(6):
            p = f"encoder.layer.{l}."
            q, k, v = (
                self.lin(x, p + "attention.self." + s).view(b, n, 12, 32).transpose(1, 2)
                for s in ("query", "key", "value")
            )
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(32) + bias, -1) @ v
            x = self.ln(
                x + self.lin(a.transpose(1, 2).reshape(b, n, 384), p + "attention.output.dense"),
                p + "attention.output.LayerNorm",
            )
            h = F.gelu(self.lin(x, p + "intermediate.dense"))
            x = self.ln(x + self.lin(h, p + "output.dense"), p + "output.LayerNorm")
        m = mask[:, :, None].float()
        return F.normalize((x * m).sum(1) / m.sum(1), dim=-1)


def batches(texts, size=64):
    for i in range(0, len(texts), size):
        enc = tok.encode_batch(texts[i : i + size])
        yield torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc])


def embed(model, texts):
    with torch.no_grad():
        return torch.cat([model(i, m) for i, m in batches(texts)])


# --- the policy: node -> (kind, texts) -------------------------------------------------
def parse(path):
    src = open(path).read()
    src = re.sub(r"(?m)^\s*#.*$", "", src)
    nodes = {}
    # statements end with ' .' at line end; strings contain no ' .\n'
    for stmt in re.split(r'"\s*\.\s*\n|\s\.\s*\n', src):
        m = re.match(r"\s*(?:[\w:]+\s*\{)?\s*((?:lore|bm):[\w-]+)\s", stmt)
        if not m:
            continue
        subj = m.group(1)
        node = nodes.setdefault(subj, {"kind": None, "texts": []})
        k = re.search(r"\ba (lore:(?:Topic|OrdinaryTalk|Hazard))\b", stmt)
        if k:
            node["kind"] = k.group(1)
        for seg in re.finditer(
            r'lore:(example|term)\s+((?:"(?:[^"\\]|\\.)*"\s*,?\s*)+)', stmt + '"'
        ):
            node["texts"] += re.findall(r'"((?:[^"\\]|\\.)*)"', seg.group(2))
    return nodes


pol = parse(f"{ROOT}/world/policy.trig")
bm = parse(f"{ROOT}/world/brindlemoor.trig")
for k, v in bm.items():
    n = pol.setdefault(k, {"kind": None, "texts": []})
    n["texts"] += v["texts"]
    n["kind"] = n["kind"] or v["kind"]
topics = sorted(k for k, v in pol.items() if v["kind"] == "lore:Topic" and v["texts"])
ordinary = [t for k, v in pol.items() if v["kind"] == "lore:OrdinaryTalk" for t in v["texts"]]
hazards = [t for k, v in pol.items() if v["kind"] == "lore:Hazard" for t in v["texts"]]
train = (
    [(t, k) for k in topics for t in pol[k]["texts"]]
    + [(t, "-") for t in ordinary]
    + [(t, "hazard") for t in hazards]
)
print("topics", len(topics), "train texts", len(train), "ordinary", len(ordinary), file=sys.stderr)

sets = sys.argv[1].split(",")
test = []
for s in sets:
    for line in open(f"{ROOT}/world/eval/{s}.tsv"):
        if line.startswith("#") or "\t" not in line:
            continue
        node, text = line.rstrip("\n").split("\t", 1)
        test.append((text, node, s))
print("test lines", len(test), file=sys.stderr)


def heads(X, labels):
    """One-vs-rest logistic heads, class-balanced, L2, full-batch LBFGS."""
    out = {}
    for k in topics:
        y = torch.tensor([1.0 if l == k else 0.0 for l in labels])
        pos = y.sum()
        w = torch.where(y > 0, 0.5 / pos, 0.5 / (len(y) - pos))
        lin = torch.nn.Linear(384, 1)
        opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (
                w * F.binary_cross_entropy_with_logits(lin(X).squeeze(-1), y, reduction="none")
            ).sum() + 1e-3 * (lin.weight**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        out[k] = lin
    return out


def evaluate(model, name):
    X = embed(model, [t for t, _ in train])
    H = heads(X, [l for _, l in train])
    T = embed(model, [t for t, _, _ in test])
    with torch.no_grad():
        P = torch.stack([torch.sigmoid(H[k](T).squeeze(-1)) for k in topics], 1)  # lines x topics
    res = {}
    for th in (0.5, 0.6, 0.7, 0.8):
        hit = fa = npos = nneg = 0
        for i, (text, node, s) in enumerate(test):
            if node in topics:
                npos += 1
                hit += P[i, topics.index(node)] >= th
            elif node == "-":
                nneg += 1
                fa += P[i].max() >= th
        res[th] = (float(hit) / npos, 1 - float(fa) / nneg)
    # recall of own head at a fixed false-alarm rate over '-' lines
    neg = torch.tensor(
        sorted([float(P[i].max()) for i, (_, n, _) in enumerate(test) if n == "-"]),
        dtype=torch.float,
    )
    for far in (0.03, 0.05, 0.10):
        th = float(neg[int(len(neg) * (1 - far))])
        hit = sum(
            float(P[i, topics.index(n)]) >= th for i, (_, n, _) in enumerate(test) if n in topics
        )
        res[f"far{far}"] = (round(th, 3), hit / sum(1 for _, n, _ in test if n in topics))
    print(name, json.dumps({str(k): v for k, v in res.items()}), flush=True)


model = MiniLM(W)
if not os.environ.get("SKIP_FROZEN"):
    evaluate(model, "frozen")

# --- SetFit: cosine-similarity loss on pairs from the policy's own texts --------------------
R = int(sys.argv[2]) if len(sys.argv) > 2 else 5
by = {}
for t, l in train:
    by.setdefault(l, []).append(t)
pairs = []
for _ in range(R):
    for t, l in train:
        pairs.append((t, random.choice(by[l]), 1.0))
        o = random.choice([x for x in by if x != l])
        pairs.append((t, random.choice(by[o]), 0.0))
random.shuffle(pairs)
import os

layers = os.environ.get("TRAIN_LAYERS")
if layers:
    keep = tuple(f"encoder__layer__{l}__" for l in layers.split(","))
    for k, v in model.p.items():
        v.requires_grad_(k.startswith(keep))
LR = float(os.environ.get("LR", "2e-5"))
opt = torch.optim.AdamW([v for v in model.parameters() if v.requires_grad], lr=LR)
start = time.time()
B = 32
model.train()
for i in range(0, len(pairs), B):
    chunk = pairs[i : i + B]
    ea = tok.encode_batch([a for a, _, _ in chunk])
    eb = tok.encode_batch([b for _, b, _ in chunk])
    ia, ma = torch.tensor([e.ids for e in ea]), torch.tensor([e.attention_mask for e in ea])
    ib, mb = torch.tensor([e.ids for e in eb]), torch.tensor([e.attention_mask for e in eb])
    cos = (model(ia, ma) * model(ib, mb)).sum(-1)
    loss = F.mse_loss(cos, torch.tensor([y for _, _, y in chunk]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    if (i // B) % 100 == 0:
        print(
            f"pair {i}/{len(pairs)} loss {loss.item():.3f} {time.time()-start:.0f}s",
            file=sys.stderr,
            flush=True,
        )
model.eval()
tag = f'R{R}-L{layers or "all"}-lr{LR}'
evaluate(model, f"setfit {tag}")
if os.environ.get("SAVE"):
    torch.save({k: v.detach() for k, v in model.p.items()}, os.environ["SAVE"])
