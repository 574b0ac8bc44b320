"""What this peer process really runs on: the shared libraries mapped into it
(read from /proc/self/maps), the memory allocator (jemalloc / tcmalloc when
LD_PRELOAD brought one in, else glibc's malloc) and the BLAS. The harness
(benchmarks/machine.ts) classifies the same list; the peer also says it on
stderr, so a run by hand shows it too."""
import json
import os
import sys


def mapped_libs():
    """Sorted paths of the shared objects mapped into this process."""
    try:
        with open("/proc/self/maps") as f:
            return sorted({line.split()[-1] for line in f if ".so" in line.split()[-1]})
    except OSError:
        return []


def allocator(libs):
    for key, name in (("jemalloc", "jemalloc"), ("tcmalloc", "tcmalloc"), ("mimalloc", "mimalloc")):
        hit = [p for p in libs if key in os.path.basename(p).lower()]
        if hit:
            return f"{name} ({hit[0]})"
    return "glibc malloc"


def describe():
    libs = mapped_libs()
    return {"libs": libs, "allocator": allocator(libs), "malloc_conf": os.environ.get("MALLOC_CONF", "")}


def emit(obj):
    """One JSON object per line on stdout: what the harness reads."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def make_log(prefix):
    """Progress lines on stderr, tagged with the peer's name."""
    def log(msg):
        sys.stderr.write(f"  [{prefix}] {msg}\n")
        sys.stderr.flush()
    return log

