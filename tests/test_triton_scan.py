"""The Triton selective-scan kernel against the exact `step`: directly (chunks, odd sizes) and through `selective_scan`.
On CUDA the kernels run compiled. On the CPU they run in Triton's interpreter, which must be on before `triton` is first
imported — torch imports it whenever `torch._dynamo` loads (an optimiser step does) — so `test_triton_in_interpreter`
runs this file again in a fresh process with TRITON_INTERPRET=1, and the cases below run there."""
import os, subprocess, sys, pytest, torch
CHILD = os.environ.get('MAMBATTS_TRITON_CHILD') == '1'
if CHILD: os.environ['TRITON_INTERPRET'] = '1'
pytest.importorskip('triton', reason='triton is installed by the [dev] extra')
from mambatts_nb.ssm import selective_scan, resolve_backend, scan_step

DEV = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
kernel_runs = pytest.mark.skipif(not (DEV.type == 'cuda' or CHILD),
                                 reason='on the CPU these run in the interpreter child of test_triton_in_interpreter')

@pytest.mark.slow
def test_triton_in_interpreter():
    "CPU: every case of this file, in a fresh process with Triton's interpreter on; none may fail or skip."
    if DEV.type == 'cuda' or CHILD: pytest.skip('CUDA runs the cases compiled; the child runs them itself')
    env = dict(os.environ, TRITON_INTERPRET='1', MAMBATTS_TRITON_CHILD='1')
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider',
                        '-k', 'not in_interpreter and not needs_cuda', __file__],
                       env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    summary = out.strip().splitlines()[-1]
    assert ' passed' in summary and 'skipped' not in summary and 'failed' not in summary, out[-2000:]

def _run(x, backend):
    leaves = {k: v.requires_grad_() for k, v in x.items() if torch.is_tensor(v)}
    y, last = selective_scan(**x, backend=backend)
    grads = torch.autograd.grad((y * torch.linspace(-1, 1, y.shape[-1], device=y.device)).sum() + last.square().sum(),
                                list(leaves.values()))
    return y, last, dict(zip(leaves, grads))

@kernel_runs
@pytest.mark.parametrize('l,dt_scale,carried,backend', [(70, 1.0, True, 'triton'), (65, 30.0, False, 'triton'),
                                                        (70, 1.0, True, 'triton_par')])
def test_selective_scan_triton_equals_step(l, dt_scale, carried, backend, scan_inputs):
    "Through `selective_scan` (Δ bias, softplus, D, z); 70 and 65 steps cross the 64-step chunk boundary."
    x = scan_inputs(2, 6, 16, l, dt_scale)
    if not carried: x.pop('h0')
    ref = _run({k: v.double() if torch.is_tensor(v) else v for k, v in x.items()}, 'step')
    y, last, grads = _run({k: v.float().to(DEV) if torch.is_tensor(v) else v for k, v in x.items()}, backend)
    assert y.dtype == torch.float32 and last.shape == (2, 6, 16)
    torch.testing.assert_close(y.cpu().double(), ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last.cpu().double(), ref[1], atol=1e-5, rtol=1e-5)
    assert grads.keys() == ref[2].keys()
    for k, g in grads.items():
        torch.testing.assert_close(g.cpu().double(), ref[2][k], atol=1e-5, rtol=1e-4, msg=f'd{k}')

@kernel_runs
@pytest.mark.parametrize('parallel', [False, True], ids=['sequential', 'parallel'])
@pytest.mark.parametrize('b,d,l,n,scale,carried,chunk', [
    (2, 20, 37, 16, 1.0, True, 16),     # 3 chunks, the last one partial; d not a multiple of block_d
    (1, 8, 24, 5, 2.0, False, 8),       # n = 5 (padded to 8); Δ up to e^6: exp(ΔA) underflows
    (1, 4, 100, 4, 1.0, True, 8)])      # 13 chunks: the carry between chunks, forwards and backwards
def test_kernel_equals_step(b, d, l, n, scale, carried, chunk, parallel):
    from mambatts_nb.triton_scan import scan_triton
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    x = [r(b, d, l), (r(b, d, l) * scale).exp() * 0.1, -torch.rand(d, n, generator=g) * 4, r(b, n, l), r(b, n, l),
         r(b, d, n) if carried else None]
    w = [torch.randn(b, d, l, generator=g), torch.randn(b, d, n, generator=g)]
    ref = [t.double().requires_grad_() if t is not None else None for t in x]
    ours = [t.to(DEV).requires_grad_() if t is not None else None for t in x]
    y0, l0 = scan_step(*ref)
    ((y0 * w[0].double()).sum() + (l0 * w[1].double()).sum()).backward()
    y, last = scan_triton(*ours, chunk=chunk, parallel=parallel)
    ((y * w[0].to(DEV)).sum() + (last * w[1].to(DEV)).sum()).backward()
    torch.testing.assert_close(y.detach().cpu().double(), y0.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last.detach().cpu().double(), l0.detach(), atol=1e-5, rtol=1e-5)
    for name, a, e in zip(('du', 'ddelta', 'dA', 'dB', 'dC', 'dh0'), ours, ref):
        if a is not None: torch.testing.assert_close(a.grad.cpu().double(), e.grad, atol=1e-5, rtol=1e-4, msg=name)

@kernel_runs
def test_triton_backend_choice(scan_inputs):
    "The backend resolves where it can run; fp64 is refused by name (the kernel is fp32)."
    from mambatts_nb.triton_scan import scan_triton
    assert resolve_backend('triton', DEV) == 'triton'
    if DEV.type == 'cuda': assert resolve_backend('auto', DEV) in ('triton', 'mamba_ssm')
    else: assert resolve_backend('auto', DEV) in ('fused', 'scan')
    x = scan_inputs(1, 2, 4, 5, 1.0)
    with pytest.raises(TypeError, match='runs in fp32, got torch.float64'):
        scan_triton(*(x[k].double().to(DEV) for k in ('u', 'delta', 'A', 'B', 'C')))

def test_triton_backend_needs_cuda_or_the_interpreter():
    if DEV.type == 'cuda' or CHILD: pytest.skip('here the backend is available')
    for backend in ('triton', 'triton_par'):
        with pytest.raises(ValueError, match=f"backend '{backend}' needs the triton package and a CUDA device"):
            resolve_backend(backend, 'cpu')
