#!/usr/bin/env python3
"""PyTorch peer of the harness's real-job rows (benchmarks/jobs.ts spawns it).

    python3 torch_jobs.py SPEC.json

SPEC: {"threads": T, "data": {"train"|"test": {"images", "labels", "n",
"channels", "height", "width"}}, "tmp": DIR, "jobs": [{"id", "kind", "params",
"files"}]}. The data files are the raw bytes of Fashion-MNIST as encsec loads
it (lib/data/builtin.ts: uint8 images [N,1,28,28], int32 labels, in the
loader's class-interleaved order), written by the harness, so index i is the
same image on both sides; "files" hold the index orders encsec uses (the
pre-training epoch's permutation, the steal's queried images and each
epoch's batch order). Prints one JSON line per job on stdout, after a
{"meta"} line: {"id", "images", "jobSeconds", "loopSeconds", "phases"} or
{"id", "error"}. Progress goes to stderr, as JSON lines every 10 s, as
`encsec --progress json` writes them.

The same work as encsec's jobs (benchmarks/job_runner.ts, `encsec pretrain`):
- pretrain: cnn-small + projection head (128 -> 128 -> 64), Adam (lr 1e-3,
  weight decay 1e-6), batches of 256 in encsec's epoch order, two augmented
  views of each image (torch_models.augment) through the encoder as one
  batch, NT-Xent (tau 0.5), loss.item() every step, progress, the training
  checkpoint (encoder, head, optimizer state) written atomically after the
  epoch, then the encoder file.
- steal: a cnn-small target in eval mode embeds the Q queried images once
  (batches of 256, under inference_mode); the surrogate (cnn-small, 128-d like
  the target: no adapter) trains for E epochs, batches of 128, Adam lr 1e-3:
  mse = mean squared error; cosine = mean(1 - cos); stolenencoder = cosine
  loss of the clean batch + lambda (1) x the cosine loss of k (1) augmented
  views, each its own forward pass; contsteal = NT-Xent (tau 0.5) over
  cat[s(augmented view), t] with t constant. Then the stolen encoder file.
- probe: embeddings of TRAIN and TEST in eval mode (batches of 512, under
  inference_mode), standardised with TRAIN's mean and population std (floored
  at 1e-6), a linear layer (uniform(-1/sqrt(d), 1/sqrt(d)) weights, zero
  bias) trained full batch with Adam (lr 1e-2) and cross-entropy for the
  given epochs, then the predictions of TEST and TRAIN.
Tuning: torch.set_num_threads(T), channels_last tensors and model
(oneDNN), no autograd where nothing trains; the allocator and BLAS come from
the environment the harness sets (LD_PRELOAD of jemalloc, an OpenBLAS first
on LD_LIBRARY_PATH) and are reported in the meta line.
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import augment, make_encoder, nt_xent, projection_head  # noqa: E402
from peer_env import describe as describe_env, emit, make_log  # noqa: E402

CL = torch.channels_last


log = make_log("peer jobs")


class Progress:
    """encsec's JSON progress: a line at most every 10 s, and the last step."""

    def __init__(self, interval=10.0):
        self.interval = interval
        self.last = 0.0

    def update(self, **e):
        now = time.time()
        if now - self.last < self.interval and e.get("step") != e.get("steps"):
            return
        self.last = now
        sys.stderr.write(json.dumps({"type": "progress", **e}) + "\n")

    def event(self, **e):
        sys.stderr.write(json.dumps({"type": "event", **e}) + "\n")


def read_u8(path, shape):
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    return torch.frombuffer(buf, dtype=torch.uint8).reshape(shape)


def read_i32(path):
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    return torch.frombuffer(buf, dtype=torch.int32).to(torch.int64)


def load_split(d):
    images = read_u8(d["images"], (d["n"], d["channels"], d["height"], d["width"]))
    labels = read_i32(d["labels"])
    return images, labels


def normalize(u8):
    """encsec's toTensor: (p / 255 - 0.5) / 0.5, channels_last."""
    return ((u8.float() / 255.0 - 0.5) / 0.5).contiguous(memory_format=CL)


def save_atomic(obj, path):
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def batches(order, size):
    """encsec's epochBatches: the order cut into batches; a last batch of fewer than 2 is dropped."""
    out = [order[s:s + size] for s in range(0, order.numel(), size)]
    return [b for b in out if b.numel() >= 2]


def pretrain_job(job, data, tmp):
    p = job["params"]
    images, _ = data["train"]
    n = int(p["images"])
    images = images[:n]  # `--limit n`: the first n images of TRAIN
    order = read_i32(job["files"]["order"])
    assert order.numel() == n, f"order has {order.numel()} indices for {n} images"
    t0 = time.perf_counter()
    torch.manual_seed(int(p["seed"]))
    enc, _, out_dim = make_encoder(p["arch"])
    head = projection_head(enc.dim, out_dim)
    enc = enc.to(memory_format=CL).train()
    head.train()
    opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-3, weight_decay=1e-6)
    gen = torch.Generator().manual_seed(int(p["seed"]) + 2)
    bs = int(p["batch"])
    cache = {}
    progress = Progress()
    steps = batches(order, bs)
    tl = time.perf_counter()
    loss_sum, seen = 0.0, 0
    for step, idx in enumerate(steps):
        b = idx.numel()
        if b not in cache:
            cache[b] = (torch.eye(2 * b, dtype=torch.bool), (torch.arange(2 * b) + b) % (2 * b))
        mask, labels = cache[b]
        xb = images[idx]
        views = augment(torch.cat([xb, xb]), gen).contiguous(memory_format=CL)
        z = head(enc(views))
        loss = nt_xent(z, 0.5, mask, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = loss.item()
        loss_sum += lv * b
        seen += b
        sec = time.perf_counter() - tl
        progress.update(task="pretrain", epoch=1, epochs=1, step=step + 1, steps=len(steps), loss=round(lv, 4),
                        imagesPerSec=round(seen / max(sec, 1e-3), 1),
                        etaSec=round((len(steps) - step - 1) * sec / (step + 1)))
    loop = time.perf_counter() - tl
    rec = {"epoch": 1, "loss": loss_sum / max(seen, 1), "seconds": loop, "imagesPerSec": seen / max(loop, 1e-3)}
    progress.event(task="pretrain", **rec)
    tc = time.perf_counter()
    out = os.path.join(tmp, f"{job['id']}.pt")
    save_atomic({"encoder": enc.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
                 "epoch": 1, "history": [rec]}, out + ".ckpt")
    checkpoint = time.perf_counter() - tc
    enc.eval()
    save_atomic(enc.state_dict(), out)
    job_seconds = time.perf_counter() - t0
    return {"images": seen, "jobSeconds": job_seconds, "loopSeconds": loop,
            "phases": {"loop": loop, "checkpoint": checkpoint, "loss": rec["loss"]}}


def cosine_loss(s, t):
    return (1 - F.cosine_similarity(s, t, dim=1, eps=1e-8)).mean()


def steal_job(job, data, tmp):
    p = job["params"]
    images, _ = data["train"]
    method = p["method"]
    budget, epochs, bs = int(p["budget"]), int(p["epochs"]), int(p["batch"])
    lam, k = float(p.get("lambda", 1)), int(p.get("k", 1))
    queried = read_i32(job["files"]["queried"])
    orders = read_i32(job["files"]["orders"]).view(epochs, budget)
    t0 = time.perf_counter()
    torch.manual_seed(1)
    target, _, _ = make_encoder(p["arch"])
    target = target.to(memory_format=CL).eval()
    progress = Progress()
    # 1. Query each selected image once; cache the embeddings.
    data_q = images[queried]  # the attacker's copy of the queried images
    parts = []
    with torch.inference_mode():
        for s in range(0, budget, 256):
            parts.append(target(normalize(data_q[s:s + 256])))
            progress.update(task=f"query:{method}", step=min(budget, s + 256), steps=budget)
    cache = torch.cat(parts).clone()
    query = time.perf_counter() - t0
    # 2. Train the surrogate against the cache.
    tt = time.perf_counter()
    torch.manual_seed(int(p["seed"]))
    sur, _, _ = make_encoder(p["arch"])
    sur = sur.to(memory_format=CL).train()
    opt = torch.optim.Adam(sur.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(int(p["seed"]) + 12)
    nt = {}
    for e in range(epochs):
        te = time.perf_counter()
        steps = batches(orders[e], bs)
        loss_sum, seen = 0.0, 0
        for step, idx in enumerate(steps):
            xb = data_q[idx]
            t = cache[idx]
            if method == "mse":
                loss = F.mse_loss(sur(normalize(xb)), t)
            elif method == "cosine":
                loss = cosine_loss(sur(normalize(xb)), t)
            elif method == "stolenencoder":
                loss = cosine_loss(sur(normalize(xb)), t)
                if lam > 0 and k > 0:
                    views = sum(cosine_loss(sur(augment(xb, gen).contiguous(memory_format=CL)), t) for _ in range(k))
                    loss = loss + views * (lam / k)
            elif method == "contsteal":
                b = idx.numel()
                if b not in nt:
                    nt[b] = (torch.eye(2 * b, dtype=torch.bool), (torch.arange(2 * b) + b) % (2 * b))
                s = sur(augment(xb, gen).contiguous(memory_format=CL))
                loss = nt_xent(torch.cat([s, t]), float(p.get("tau", 0.5)), *nt[b])
            else:
                raise ValueError(f"unknown steal method {method}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lv = loss.item()
            loss_sum += lv * idx.numel()
            seen += idx.numel()
            sec = time.perf_counter() - te
            progress.update(task=f"steal:{method}", epoch=e + 1, epochs=epochs, step=step + 1, steps=len(steps),
                            loss=round(lv, 4), imagesPerSec=round(seen / max(sec, 1e-3), 1))
        progress.event(task=f"steal:{method}", epoch=e + 1, loss=loss_sum / max(seen, 1), seconds=time.perf_counter() - te)
    train = time.perf_counter() - tt
    sur.eval()
    save_atomic(sur.state_dict(), os.path.join(tmp, f"{job['id']}.pt"))
    job_seconds = time.perf_counter() - t0
    return {"images": budget * (1 + epochs), "jobSeconds": job_seconds, "loopSeconds": train,
            "phases": {"query": query, "train": train}}


def embed(enc, images, bs=512):
    out = []
    with torch.inference_mode():
        for s in range(0, images.shape[0], bs):
            out.append(enc(normalize(images[s:s + bs])))
    return torch.cat(out)


def probe_job(job, data, tmp):
    p = job["params"]
    limit = int(p.get("limit", 0))
    tr_x, tr_y = data["train"]
    te_x, te_y = data["test"]
    if limit > 0:
        tr_x, tr_y, te_x, te_y = tr_x[:limit], tr_y[:limit], te_x[:limit], te_y[:limit]
    torch.manual_seed(int(p["seed"]))
    enc, _, _ = make_encoder(p["arch"])
    enc = enc.to(memory_format=CL).eval()
    t0 = time.perf_counter()
    e_tr = embed(enc, tr_x)
    e_te = embed(enc, te_x)
    t1 = time.perf_counter()
    mean = e_tr.double().mean(0)
    std = e_tr.double().std(0, unbiased=False).clamp(min=1e-6)
    x_tr = ((e_tr.double() - mean) / std).float()
    x_te = ((e_te.double() - mean) / std).float()
    d, classes = x_tr.shape[1], 10
    g = torch.Generator().manual_seed(int(p["seed"]))
    bound = 1 / math.sqrt(d)
    w = (torch.rand(classes, d, generator=g) * 2 * bound - bound).requires_grad_()
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    for _ in range(int(p["epochs"])):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(F.linear(x_tr, w, b), tr_y)
        loss.backward()
        opt.step()
        loss.item()
    with torch.no_grad():
        acc = (F.linear(x_te, w, b).argmax(1) == te_y).float().mean().item()
        (F.linear(x_tr, w, b).argmax(1) == tr_y).float().mean().item()
    t2 = time.perf_counter()
    return {"images": tr_x.shape[0] + te_x.shape[0], "jobSeconds": t2 - t0, "loopSeconds": 0.0,
            "phases": {"embed": t1 - t0, "probe": t2 - t1, "accuracy": acc}}


JOBS = {"pretrain": pretrain_job, "steal": steal_job, "probe": probe_job}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    env = describe_env()
    from torch_bench import loaded_blas  # noqa: E402 (after the thread count is set)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()), "blas": loaded_blas(),
            "allocator": env["allocator"], "mallocConf": env["malloc_conf"], "libs": env["libs"],
            "device": "cpu", "cuda": None}
    emit({"meta": meta})
    log(f"allocator: {env['allocator']}; BLAS: {meta['blas']}; {meta['threads']} threads")
    data = {k: load_split(v) for k, v in spec["data"].items()}
    tmp = spec["tmp"]
    os.makedirs(tmp, exist_ok=True)
    for job in spec["jobs"]:
        try:
            r = JOBS[job["kind"]](job, data, tmp)
            emit({"id": job["id"], **r})
            log(f"{job['id']}: {r['jobSeconds']:.2f} s")
        except Exception as e:  # one failing job must not lose the others
            emit({"id": job["id"], "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
