"""The Triton selective-scan kernel against the exact `step`, through `selective_scan` (Δ bias, softplus, D, the z gate).
Without a GPU it runs in Triton's interpreter: TRITON_INTERPRET=1 must be set before the kernels are defined."""
import os, pytest, torch
if not torch.cuda.is_available(): os.environ.setdefault('TRITON_INTERPRET', '1')
pytest.importorskip('triton', reason='triton is installed by the [dev] extra')
from test_ssm import _inputs
from mambatts_nb.ssm import selective_scan, resolve_backend

DEV = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

def _run(x, backend):
    leaves = {k: v.requires_grad_() for k, v in x.items() if torch.is_tensor(v)}
    y, last = selective_scan(**x, backend=backend)
    grads = torch.autograd.grad((y * torch.linspace(-1, 1, y.shape[-1], device=y.device)).sum() + last.square().sum(),
                                list(leaves.values()))
    return y, last, dict(zip(leaves, grads))

@pytest.mark.parametrize('l,dt_scale,carried', [(70, 1.0, True), (65, 30.0, False)])
def test_triton_equals_step(l, dt_scale, carried):
    "Values, last state and all gradients to fp32 precision; 70 and 65 steps cross the 64-step chunk boundary."
    x = _inputs(2, 6, 16, l, dt_scale)
    if not carried: x.pop('h0')
    ref = _run({k: v.double() if torch.is_tensor(v) else v for k, v in x.items()}, 'step')
    y, last, grads = _run({k: v.float().to(DEV) if torch.is_tensor(v) else v for k, v in x.items()}, 'triton')
    assert y.dtype == torch.float32 and last.shape == (2, 6, 16)
    torch.testing.assert_close(y.cpu().double(), ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last.cpu().double(), ref[1], atol=1e-5, rtol=1e-5)
    assert grads.keys() == ref[2].keys()
    for k, g in grads.items(): torch.testing.assert_close(g.cpu().double(), ref[2][k], atol=1e-5, rtol=1e-4, msg=f'd{k}')

def test_triton_backend_choice():
    "'auto' picks Triton on CUDA (without mamba_ssm); on the CPU it stays with the fused kernel; fp64 is refused by name."
    assert resolve_backend('triton', DEV) == 'triton'
    if DEV.type == 'cpu': assert resolve_backend('auto', DEV) in ('fused', 'scan')
    x = _inputs(1, 2, 4, 5, 1.0)
    with pytest.raises(TypeError, match='runs in fp32, got torch.float64'):
        from mambatts_nb.triton_scan import scan_triton
        scan_triton(*(x[k].double().to(DEV) for k in ('u', 'delta', 'A', 'B', 'C')))
