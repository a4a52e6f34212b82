"Backends agree with the exact step; mambapy's MambaBlock weights load unchanged and give the same output."
import pytest, torch
from mambatts_nb.ssm import selective_scan
from mambatts_nb.blocks import MambaMixer

@pytest.mark.parametrize('l,dt_scale,d', [(1, 1.0, 6), (257, 1.0, 6), (2048, 1.0, 6), (300, 30.0, 6), (130, 1.0, 70)])
def test_scan_equals_step_values_and_gradients(l, dt_scale, d, scan_inputs):
    "fp32, padding, a carried state, large Δ; d 70: the fused kernel's channel blocks of 32, the last one ragged."
    x = scan_inputs(2, d, 16, l, dt_scale)
    leaves = {k: v.requires_grad_() for k, v in x.items() if torch.is_tensor(v)}
    outs = {}
    for backend in ('step', 'scan', 'fused'):
        y, last = selective_scan(**x, backend=backend)
        grads = torch.autograd.grad((y.square().mean() + last.square().mean()), list(leaves.values()))
        outs[backend] = (y, last, grads)
    y1, s1, g1 = outs['step']
    for backend in ('scan', 'fused'):
        y2, s2, g2 = outs[backend]
        torch.testing.assert_close(y2, y1, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(s2, s1, atol=1e-5, rtol=1e-5)
        for k, a, b in zip(leaves, g1, g2):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4, msg=f'{backend} d{k}')

def test_mambapy_weights_load_unchanged_and_agree():
    mambapy = pytest.importorskip('mambapy.mamba')
    torch.manual_seed(0)
    ref = mambapy.MambaBlock(mambapy.MambaConfig(d_model=48, n_layers=1, expand_factor=2, d_state=16, pscan=True))
    ours = MambaMixer(48, d_state=16, expand=2)
    ours.load_state_dict(ref.state_dict())                       # strict: same names, same shapes
    x = torch.randn(2, 130, 48)
    torch.testing.assert_close(ours(x)[0], ref(x), atol=1e-5, rtol=1e-5)


THREADS = r'''
import torch
from mambatts_nb.ssm import selective_scan
x = [torch.randn(2, 256, 400), torch.rand(2, 256, 400), -torch.rand(256, 16), torch.randn(2, 16, 400),
     torch.randn(2, 16, 400)]
selective_scan(*x, delta_softplus=False, backend='fused')
print(torch.get_num_threads())
'''

def test_the_fused_kernel_leaves_torchs_threads_alone():
    """numba's OpenMP layer reset the process's OpenMP thread count (OMP_NUM_THREADS=1 → 2 here) and its threads then
    fought torch's (a decode after the fused scan ran 10× slower): the package picks numba's workqueue layer (with
    NUMBA_THREADING_LAYER=omp this test fails). A fresh process, as a user's."""
    import os, subprocess, sys
    env = {k: v for k, v in os.environ.items() if k not in ('NUMBA_THREADING_LAYER', 'NUMBA_NUM_THREADS')}
    out = subprocess.run([sys.executable, '-c', THREADS], capture_output=True, text=True, check=True,
                         env=env | dict(OMP_NUM_THREADS='1')).stdout
    assert out.split()[-1] == '1', out
