#!/usr/bin/env python3
"""Mutation check of the CUDA emulator self-test (emu_selftest.cu).

Each mutation breaks one thing the emulator claims to do (a check it makes, a
semantic it implements) in a COPY of cuda/emu under a temporary directory --
never in the checkout, which other builds may be reading -- rebuilds the
self-test against the copy with g++ (no CMake, no addon) and expects it to
fail: a non-zero exit, a crash, or a hang past the timeout all count as caught.
Exit status 0 only if every mutation is caught.

  python3 cuda/emu/selftest/mutate.py            # all mutations (~5 min on 2 cores)
  python3 cuda/emu/selftest/mutate.py 0 3        # by index

There is no mutation for "each thread gets its own copy of the kernel's
by-value parameters": a kernel is a C++ function taking them by value, so
every call copies them whatever the emulator does.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EMU = os.path.dirname(HERE)  # cuda/emu
SRC = os.path.join(HERE, 'emu_selftest.cu')

RT, H = 'emu_runtime.cc', 'include/cuda_runtime.h'
SHFL_RET = 'return b.xchg[set + size_t(base + (lane ^ (lane_mask & 31)))];'
REVERSE = '        b.reverse = ((uint64_t(bz) * g.y + by) * g.x + bx) & 1;\n'
# (what breaks, file, exact text, replacement)
MUTATIONS = [
    ('deadlock detector never fires', RT, 'if (!released && !progressed) {', 'if (false) {'),
    ('divergent-exit barrier check removed', RT, 'if (live != b.n) {', 'if (false) {'),
    ('warp all-lanes check removed', RT, 'if (waiting != 32) {', 'if (false) {'),
    ('shuffle returns own value', RT, SHFL_RET, 'return bits;'),
    ('shuffle narrows to 32 bits', RT, SHFL_RET, SHFL_RET.replace('return ', 'return uint32_t(').replace(';', ');')),
    ('syncthreads_or without its second barrier', RT, '  syncthreads();  // nobody overwrites', '  // nobody overwrites'),
    ('syncthreads is a no-op', RT, '  b.fibers[size_t(b.cur)].state = State::kBlockBar;\n  yield_to_scheduler();', '  (void)b;'),
    ('dynamic smem not re-poisoned per block', RT, '        std::fill(g_dyn_smem.begin(), g_dyn_smem.end(), char(0xff));\n', ''),
    ('every block ascending', RT, REVERSE, ''),
    ('every block descending', RT, REVERSE, '        b.reverse = true;\n'),
    ('pointer-argument check off', RT, 'if (!is_tracked(p)) {', 'if (false) {'),
    ('grid.y limit off by one', RT, 'g.y > 65535', 'g.y > 65536'),
    ('block of 0 threads accepted', RT, 'threads == 0 ||', ''),
    ('threadIdx x/y swapped', RT, 'ThreadCtx{{tx, ty, tz}', 'ThreadCtx{{ty, tx, tz}'),
    ('blockIdx.z reported as 0', RT, '{bx, by, bz}, {bl.x', '{bx, by, 0}, {bl.x'),
    ('fresh device memory not poisoned', RT, '  std::memset(m, 0xff, want);\n', ''),
    ('cudaMalloc 16-byte aligned', RT, 'posix_memalign(&m, 256, want)', 'posix_memalign(&m, 16, want + 16)'),
    ('cudaMemGetInfo ignores allocations', RT, 'if (!pinned) g_used += want;', ''),
    ('BL_EMU_DEVICE_BYTES ignored', RT, 'if (e && *e) return size_t(std::strtoull(e, nullptr, 10));', ''),
    ('dynamic smem attribute ignored', RT, 'if (it != g_max_dyn_smem.end()) allowed = std::max(allowed, it->second);', ''),
    ('dynamic smem limit not checked', RT, 'if (c.smem > size_t(allowed)) {', 'if (false) {'),
    ('copy range not checked', RT, 'if (dev && !bl_emu::is_device(p, bytes))', 'if (dev && !bl_emu::is_device(p, 0))'),
    ('cudaFree accepts interior pointers', RT, 'auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));',
     'auto it = g_allocs.upper_bound(reinterpret_cast<uintptr_t>(p)); if (it != g_allocs.begin()) --it;'),
    ('errors not sticky', RT, '  if (g_sticky == cudaSuccess) g_sticky = e;\n', ''),
    ('cudaGetLastError does not clear', RT, '  bl_emu::t_last = cudaSuccess;\n  return e;', '  return e;'),
    ('atomicAdd returns the new value', H, '  *p = old + v;\n  return old;', '  *p = old + v;\n  return *p;'),
]


def run_one(work, name, rel, old, new):
    emu = os.path.join(work, 'emu')
    shutil.rmtree(emu, ignore_errors=True)
    shutil.copytree(EMU, emu, ignore=shutil.ignore_patterns('selftest'))
    path = os.path.join(emu, rel)
    with open(path) as f:
        text = f.read()
    if text.count(old) != 1:
        return False, 'pattern found %d times (update this script)' % text.count(old)
    with open(path, 'w') as f:
        f.write(text.replace(old, new))
    cc, exe = os.path.join(work, 'st.cc'), os.path.join(work, 'st')
    subprocess.run(['cmake', '-DIN=' + SRC, '-DOUT=' + cc, '-P', os.path.join(emu, 'rewrite.cmake')], check=True)
    b = subprocess.run([os.environ.get('CXX', 'g++'), '-std=c++17', '-O2', '-w', '-I', os.path.join(emu, 'include'), cc,
                        os.path.join(emu, 'emu_runtime.cc'), '-o', exe], capture_output=True, text=True)
    if b.returncode != 0:
        return False, 'build failed: ' + b.stderr[-400:]
    t = time.time()
    try:
        r = subprocess.run([exe], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return True, 'hung (killed after 300 s)'
    fails = [l for l in r.stdout.split('\n') if l.startswith('FAIL')]
    if r.returncode == 0:
        return False, 'MISSED: the self-test passed'
    how = 'crashed (signal %d)' % -r.returncode if r.returncode < 0 else '%d checks failed' % len(fails)
    return True, '%s in %.0f s%s' % (how, time.time() - t, ('; first: ' + fails[0][5:120]) if fails else '')


def main():
    pick = [int(a) for a in sys.argv[1:]]
    work = tempfile.mkdtemp(prefix='bl-emu-mutate-')
    caught = total = 0
    try:
        for i, (name, rel, old, new) in enumerate(MUTATIONS):
            if pick and i not in pick:
                continue
            ok, why = run_one(work, name, rel, old, new)
            total += 1
            caught += ok
            print('%2d %-8s %s: %s' % (i, 'caught' if ok else 'MISSED', name, why), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print('%d of %d mutations caught' % (caught, total))
    return 0 if caught == total else 1


if __name__ == '__main__':
    sys.exit(main())
