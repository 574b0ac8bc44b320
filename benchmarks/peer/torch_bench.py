#!/usr/bin/env python3
"""PyTorch peer of the encsec benchmark harness (benchmarks/run.ts spawns it).

    python3 torch_bench.py SPEC.json
SPEC: {"threads": T, "device": "cpu"|"cuda", "rows": [{"id", "op", "params",
"warmup", "repeats", "minSampleMs"}, ...]} with the ops and parameters of
benchmarks/suite.ts. Prints one JSON object per line on stdout: first
{"meta": {...}}, then {"id", "iters", "samples_ms"} (ms per call) or
{"id", "error"} / {"id", "skipped"} per row. Progress goes to stderr.

    python3 torch_bench.py --rss '{"arch": "cnn-small", "batch": 256, "steps": 3, "threads": T}'
runs SimCLR steps in this fresh process and prints {"baselineMB", "peakMB", "afterMB"}.

PyTorch's best settings on a CPU: channels_last tensors for every
convolution (oneDNN's fast path), torch.set_num_threads(T) (the harness
passes encsec's thread count), no autograd where the row is a forward pass.
Timing rule (the same as the harness's): `warmup` untimed calls, one untimed
calibration call, then `repeats` samples of k back-to-back calls with k such
that a sample lasts at least minSampleMs.
"""
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import augment, make_encoder, nt_xent, projection_head  # noqa: E402
from peer_env import describe as describe_env, emit, make_log  # noqa: E402

CL = torch.channels_last


log = make_log("peer")


def loaded_blas():
    """The BLAS library this process really uses (Debian's torch links the
    libblas.so.3 that the alternatives system or LD_LIBRARY_PATH points to)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return "unknown"
    for key in ("mkl", "openblas", "blis", "atlas"):
        hit = sorted(p for p in libs if key in os.path.basename(p).lower())
        if hit:
            return hit[0]
    ref = sorted(p for p in libs if "libblas.so" in os.path.basename(p))
    if ref:
        real = os.path.realpath(ref[0])
        return real + (" (reference BLAS)" if "/blas/" in real else "")
    return "unknown"


def time_it(fn, warmup, repeats, min_ms, sync):
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    first = (time.perf_counter() - t0) * 1000
    iters = 1
    if min_ms > 0 and first < min_ms:
        iters = min(100000, math.ceil(min_ms / max(first, 1e-4)))
    samples = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) * 1000 / iters)
    return iters, samples


def rand(shape, dev, lo=-1.0, hi=1.0, gen=None):
    return (torch.rand(shape, generator=gen) * (hi - lo) + lo).to(dev)


def conv_workload(op, p, dev):
    N, C, H, W, OC, K, stride, pad = (int(p[k]) for k in ("N", "C", "H", "W", "OC", "K", "stride", "pad"))
    bound = 1 / math.sqrt(C * K * K)
    x = rand((N, C, H, W), dev).contiguous(memory_format=CL)
    w = rand((OC, C, K, K), dev, -bound, bound).contiguous(memory_format=CL)
    gamma = rand((OC,), dev, 0.5, 1.5)
    beta = rand((OC,), dev, -0.1, 0.1)
    rm = torch.zeros(OC, device=dev)
    rv = torch.ones(OC, device=dev)

    def cbr(xx, ww, gg, bb):
        y = F.conv2d(xx, ww, None, stride, pad)
        return F.relu(F.batch_norm(y, rm, rv, gg, bb, training=True, momentum=0.1, eps=1e-5))

    if op == "conv2d_fwd":
        def run():
            with torch.no_grad():
                F.conv2d(x, w, None, stride, pad)
        return run
    if op == "cbr_fwd":
        def run():
            with torch.no_grad():
                cbr(x, w, gamma, beta)
        return run
    # Backward rows: the graph is built once; each call runs only the backward
    # (d input and d weight for conv2d; d input, d weight, d gamma, d beta for the block).
    x.requires_grad_(True)
    w.requires_grad_(True)
    if op == "conv2d_bwd":
        out = F.conv2d(x, w, None, stride, pad)
        inputs = (x, w)
    else:
        gamma.requires_grad_(True)
        beta.requires_grad_(True)
        out = cbr(x, w, gamma, beta)
        inputs = (x, w, gamma, beta)
    dout = rand(tuple(out.shape), dev).contiguous(memory_format=CL)

    def run():
        torch.autograd.grad(out, inputs, dout, retain_graph=True)
    return run


def cosine_workload(op, p, dev):
    n, D = int(p["n"]), int(p["D"])
    a = rand((n, D), dev)
    b = rand((n, D), dev)

    def cos(aa, bb):
        return F.normalize(aa, dim=1, eps=1e-8) @ F.normalize(bb, dim=1, eps=1e-8).t()

    if op == "cosine_fwd":
        def run():
            with torch.no_grad():
                cos(a, b)
        return run
    a.requires_grad_(True)
    b.requires_grad_(True)
    out = cos(a, b)
    dout = rand((n, n), dev)

    def run():
        torch.autograd.grad(out, (a, b), dout, retain_graph=True)
    return run


def ntxent_workload(p, dev):
    N, D, tau = int(p["N"]), int(p["D"]), float(p["tau"])
    z = rand((2 * N, D), dev).requires_grad_(True)
    mask = torch.eye(2 * N, dtype=torch.bool, device=dev)
    labels = (torch.arange(2 * N, device=dev) + N) % (2 * N)

    def run():
        loss = nt_xent(z, tau, mask, labels)
        torch.autograd.grad(loss, z)
    return run


def perturb_workload(op, p, dev):
    rows, D = int(p["rows"]), int(p["D"])
    x = rand((rows, D), dev)
    if op == "noise":
        sigma = float(p["sigma"])

        def run():
            x + sigma * torch.randn_like(x)
        return run
    if op == "topk":
        k = int(p["k"])

        def run():
            idx = x.abs().topk(k, dim=1).indices
            torch.zeros_like(x).scatter_(1, idx, x.gather(1, idx))
        return run
    s = 10.0 ** int(p["decimals"])

    def run():
        torch.round(x * s) / s
    return run


def synthetic_images(n, shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n,) + tuple(shape), generator=g, dtype=torch.uint8)


def simclr_workload(p, dev):
    arch, batch = p["arch"], int(p["batch"])
    torch.manual_seed(0)
    enc, shape, out_dim = make_encoder(arch)
    head = projection_head(enc.dim, out_dim)
    enc = enc.to(dev).to(memory_format=CL).train()
    head = head.to(dev).train()
    opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-3, weight_decay=1e-6)
    data = synthetic_images(max(2 * batch, 64), shape).to(dev)
    gen = torch.Generator().manual_seed(2)
    n2 = 2 * batch
    mask = torch.eye(n2, dtype=torch.bool, device=dev)
    labels = (torch.arange(n2, device=dev) + batch) % n2
    state = {"step": 0}

    def run():
        start = (state["step"] * batch) % (data.shape[0] - batch + 1)
        state["step"] += 1
        xb = data[start:start + batch]
        views = augment(torch.cat([xb, xb]), gen).contiguous(memory_format=CL)
        z = head(enc(views))
        loss = nt_xent(z, 0.5, mask, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    return run


def inference_workload(p, dev):
    arch, batch = p["arch"], int(p["batch"])
    torch.manual_seed(0)
    enc, shape, _ = make_encoder(arch)
    enc = enc.to(dev).to(memory_format=CL).eval()
    x = ((synthetic_images(batch, shape).float() / 255 - 0.5) / 0.5).to(dev).contiguous(memory_format=CL)

    def run():
        with torch.inference_mode():
            enc(x)
    return run


def workload(op, p, dev):
    if op in ("conv2d_fwd", "conv2d_bwd", "cbr_fwd", "cbr_bwd"):
        return conv_workload(op, p, dev)
    if op in ("cosine_fwd", "cosine_bwd"):
        return cosine_workload(op, p, dev)
    if op == "ntxent":
        return ntxent_workload(p, dev)
    if op in ("noise", "topk", "round"):
        return perturb_workload(op, p, dev)
    if op == "simclr_step":
        return simclr_workload(p, dev)
    if op == "inference":
        return inference_workload(p, dev)
    raise ValueError(f"no peer workload for op {op}")


def cuda_settings():
    """PyTorch's best settings on a GPU at encsec's precision: cuDNN picks the
    fastest algorithm for each shape (cudnn.benchmark, tried during the warm-up
    calls), and the convolutions and matrix products stay fp32 (TF32 off, as
    encsec's kernels are fp32; ENCSEC_BENCH_TF32=1 allows TF32 for a separate
    comparison). Timing waits for the GPU (torch.cuda.synchronize) before
    every clock read. Returns the settings, for the meta line."""
    tf32 = os.environ.get("ENCSEC_BENCH_TF32", "") == "1"
    torch.backends.cudnn.enabled = True
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return {
        "version": torch.backends.cudnn.version(),
        "benchmark": True,
        "tf32": tf32,
        "capability": ".".join(str(v) for v in torch.cuda.get_device_capability(0)),
    }


def set_threads(n):
    if n and n > 0:
        torch.set_num_threads(int(n))


def peak_rss_mb():
    # VmHWM: the high-water mark of this address space. ru_maxrss is not used:
    # Linux carries it across fork + exec, so it would report the spawning
    # harness's footprint instead of this process's.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def rss_mode(arg):
    a = json.loads(arg)
    set_threads(a.get("threads"))
    with open("/proc/self/statm") as f:
        baseline = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    run = simclr_workload({"arch": a.get("arch", "cnn-small"), "batch": a.get("batch", 256)}, "cpu")
    for _ in range(int(a.get("steps", 3))):
        run()
    with open("/proc/self/statm") as f:
        after = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    peak = peak_rss_mb()
    emit({"baselineMB": baseline, "peakMB": peak, "afterMB": after})


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--rss":
        rss_mode(sys.argv[2])
        return
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    set_threads(spec.get("threads"))
    want = spec.get("device", "cpu")
    cuda_ok = torch.cuda.is_available()
    cudnn = None
    if want == "cuda" and cuda_ok:
        cudnn = cuda_settings()
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "blas": loaded_blas(),
        "device": want,
        "cuda": torch.cuda.get_device_name(0) if cuda_ok else None,
    }
    env = describe_env()
    meta["libs"] = env["libs"]
    meta["allocator"] = env["allocator"]
    log(f"allocator: {env['allocator']}; BLAS: {meta['blas']}")
    if cudnn is not None:
        meta["cudnn"] = cudnn
    emit({"meta": meta})
    if want == "cuda" and not cuda_ok:
        for r in spec["rows"]:
            emit({"id": r["id"], "skipped": "this PyTorch has no usable CUDA device"})
        return
    dev = torch.device(want)
    sync = torch.cuda.synchronize if want == "cuda" else (lambda: None)
    for r in spec["rows"]:
        try:
            run = workload(r["op"], r["params"], dev)
            iters, samples = time_it(run, int(r["warmup"]), int(r["repeats"]), float(r["minSampleMs"]), sync)
            emit({"id": r["id"], "iters": iters, "samples_ms": samples})
            log(f"{r['id']}: {sorted(samples)[len(samples) // 2]:.3f} ms")
        except Exception as e:  # one failing row must not lose the others
            emit({"id": r["id"], "error": f"{type(e).__name__}: {e}"})
        finally:
            run = None
            if want == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
