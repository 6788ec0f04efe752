#!/usr/bin/env python3
"""Probe, not part of the engine: does tuning MiniLM's upper two layers on each fold's training
prompts lift the hazard head's out-of-fold F1 / AUPRC on the moderation set over the frozen
encoder? (docs/benchmarks.md, session 25)

Usage (a virtual environment with torch, safetensors and tokenizers from PyPI):
  [MODE=cls|pairs] [R=3] [LR=1e-4] [MAXT=128] probe_guard_tuning.py
MODE=cls teaches the layers a linear head's log loss (the weighted mean over batches of 16);
MODE=pairs the SetFit cosine loss on pairs of one label and of two. Five folds over the
moderation set and XSTest together; per fold a logistic head (XSTest's safe prompts weighted
10, as `lore eval guard` does) over the frozen and over the tuned embeddings, each scored on the
held-out prompts. Prints, for both: AUPRC and best F1 on moderation, and F1 at the threshold
that keeps over-refusal on XSTest's held-out safe prompts within 3% (an oracle threshold: the
rails must choose theirs without those prompts).
"""
import json, math, os, random, sys, time, csv
import torch, torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer
torch.manual_seed(0); random.seed(0)
torch.set_num_threads(2)
M = os.environ.get(
    "LORE_ENCODER", os.path.expanduser("~/.cache/lorekeeper/models/all-minilm-l6-v2")
)
W = {k: v.float() for k, v in load_file(f"{M}/model.safetensors").items()}
tok = Tokenizer.from_file(f"{M}/tokenizer.json")
MAXT = int(os.environ.get("MAXT", "128"))
tok.enable_truncation(MAXT)
D = os.environ.get(
    "SAFETY", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/data/safety")
)
texts, labels, src = [], [], []
for l in open(f"{D}/openai_moderation_dev.jsonl"):
    r = json.loads(l); texts.append(r["prompt"]); labels.append(int(any(v == 1 for k, v in r.items() if k != "prompt"))); src.append("mod")
for r in csv.DictReader(open(f"{D}/xstest_dev.csv")):
    texts.append(r["prompt"]); labels.append(int(r["label"] == "unsafe")); src.append("xs")
N = len(texts); print("texts", N, file=sys.stderr)

def ln(x, k): return F.layer_norm(x, (384,), W[k + ".weight"], W[k + ".bias"], 1e-12)
def layer(x, mask, P, l):
    p = f"encoder.layer.{l}."
    b, n, _ = x.shape
    lin = lambda x, k: F.linear(x, P[p + k + ".weight"], P[p + k + ".bias"])
    q, k, v = (lin(x, "attention.self." + s).view(b, n, 12, 32).transpose(1, 2) for s in ("query", "key", "value"))
    bias = (1.0 - mask[:, None, None, :].float()) * -1e9
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(32) + bias, -1) @ v
    x = F.layer_norm(x + lin(a.transpose(1, 2).reshape(b, n, 384), "attention.output.dense"), (384,), P[p+"attention.output.LayerNorm.weight"], P[p+"attention.output.LayerNorm.bias"], 1e-12)
    h = F.gelu(lin(x, "intermediate.dense"))
    return F.layer_norm(x + lin(h, "output.dense"), (384,), P[p+"output.LayerNorm.weight"], P[p+"output.LayerNorm.bias"], 1e-12)

# lower four layers once, per text (no padding)
start = time.time()
lower = []
with torch.no_grad():
    for t in texts:
        e = tok.encode(t); ids = torch.tensor([e.ids]); n = ids.shape[1]
        x = ln(W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] + W["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        m = torch.ones(1, n)
        for l in range(4): x = layer(x, m, W, l)
        lower.append(x[0])
print(f"lower done {time.time()-start:.0f}s", file=sys.stderr)

def upper(P, idx):
    xs = [lower[i] for i in idx]; n = max(x.shape[0] for x in xs)
    x = torch.zeros(len(xs), n, 384); m = torch.zeros(len(xs), n)
    for j, t in enumerate(xs): x[j, :t.shape[0]] = t; m[j, :t.shape[0]] = 1
    for l in (4, 5): x = layer(x, m, P, l)
    return F.normalize((x * m[:, :, None]).sum(1) / m.sum(1, keepdim=True), dim=-1)

def embed(P, idx):
    with torch.no_grad():
        return torch.cat([upper(P, idx[i:i+32]) for i in range(0, len(idx), 32)])

def head(X, y, w):
    lin = torch.nn.Linear(384, 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=300, line_search_fn="strong_wolfe")
    def closure():
        opt.zero_grad()
        loss = (w * F.binary_cross_entropy_with_logits(lin(X).squeeze(-1), y, reduction="none")).sum() / w.sum() + 1e-3 * (lin.weight ** 2).sum()
        loss.backward(); return loss
    opt.step(closure); return lin

def weights(idx):
    return torch.tensor([10.0 if (src[i] == "xs" and labels[i] == 0) else 1.0 for i in idx])

K = 5
order = list(range(N)); random.shuffle(order)
folds = [order[f::K] for f in range(K)]
R = int(os.environ.get("R", "3")); LR = float(os.environ.get("LR", "1e-4")); MODE = os.environ.get("MODE", "pairs")
oof = {"frozen": [0.0]*N, "tuned": [0.0]*N}
for f in range(K):
    test = folds[f]; train = [i for g in range(K) if g != f for i in folds[g]]
    y = torch.tensor([float(labels[i]) for i in train]); w = weights(train)
    X = embed(W, train); h = head(X, y, w)
    with torch.no_grad():
        for i, p in zip(test, torch.sigmoid(h(embed(W, test))).squeeze(-1).tolist()): oof["frozen"][i] = p
    P = {k: (v.clone().requires_grad_(True) if k.startswith(("encoder.layer.4.", "encoder.layer.5.")) else v) for k, v in W.items()}
    params = [v for v in P.values() if v.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR)
    t0 = time.time()
    if MODE == "pairs":
        by = {0: [i for i in train if labels[i] == 0], 1: [i for i in train if labels[i] == 1]}
        pairs = []
        for _ in range(R):
            for i in train:
                pairs.append((i, random.choice(by[labels[i]]), 1.0))
                pairs.append((i, random.choice(by[1 - labels[i]]), 0.0))
        random.shuffle(pairs)
        for s in range(0, len(pairs), 16):
            c = pairs[s:s+16]
            cos = (upper(P, [a for a, _, _ in c]) * upper(P, [b for _, b, _ in c])).sum(-1)
            loss = F.mse_loss(cos, torch.tensor([t for _, _, t in c]))
            opt.zero_grad(); loss.backward(); opt.step()
    else:  # classification fine-tuning with a linear head
        cl = torch.nn.Linear(384, 1); opt.add_param_group({"params": cl.parameters(), "lr": 1e-2})
        for _ in range(R):
            random.shuffle(train)
            for s in range(0, len(train), 16):
                c = train[s:s+16]
                z = cl(upper(P, c)).squeeze(-1)
                loss = (weights(c) * F.binary_cross_entropy_with_logits(z, torch.tensor([float(labels[i]) for i in c]), reduction="none")).mean()
                opt.zero_grad(); loss.backward(); opt.step()
    y = torch.tensor([float(labels[i]) for i in train]); w = weights(train)
    h = head(embed(P, train), y, w)
    with torch.no_grad():
        for i, p in zip(test, torch.sigmoid(h(embed(P, test))).squeeze(-1).tolist()): oof["tuned"][i] = p
    print(f"fold {f} tuned in {time.time()-t0:.0f}s", file=sys.stderr, flush=True)

def metrics(ps):
    mod = [(ps[i], labels[i]) for i in range(N) if src[i] == "mod"]
    xs_safe = sorted(ps[i] for i in range(N) if src[i] == "xs" and labels[i] == 0)
    mod.sort(key=lambda t: -t[0]); P = sum(l for _, l in mod)
    tp = 0; ap = 0; best = (0, 0)
    for k, (p, l) in enumerate(mod, 1):
        if l: tp += 1; ap += tp / k
        f1 = 2 * tp / (k + P); best = max(best, (f1, p))
    # F1 at the threshold where XSTest safe over-refusal <= 3%
    th = xs_safe[int(len(xs_safe) * 0.97)]
    tp = sum(1 for p, l in mod if p > th and l); fp = sum(1 for p, l in mod if p > th and not l)
    f1x = 2 * tp / (tp + fp + P) if tp else 0
    return {"auprc": round(ap / P, 3), "best_f1": round(best[0], 3), "f1_at_xs3": round(f1x, 3)}
for k in oof: print(k, MODE, R, LR, MAXT, json.dumps(metrics(oof[k])), flush=True)
