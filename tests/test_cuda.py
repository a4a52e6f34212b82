"""The CUDA path against the CPU reference: the scan, whole models, bf16 training, flash attention, a run that resumes.
Marked `cuda` and skipped without a GPU; `scripts/gpu-check` runs them with `pytest -m cuda`."""
import json, math, pytest, torch
from mambatts_nb.config import ModelConfig
from mambatts_nb.data import collate
from mambatts_nb.model import TTSModel
from mambatts_nb.ssm import selective_scan, mamba_ssm_available
from mambatts_nb.blocks import make_block
from mambatts_nb.runs import resolve_run_config, read_metrics
from mambatts_nb.model import loss_fn
from mambatts_nb.train import train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]

@pytest.fixture(autouse=True)
def exact_fp32():
    "fp32 means fp32: no TF32 in matmuls or cuDNN convolutions while comparing with the CPU."
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

def _cuda(x): return {k: v.cuda() if torch.is_tensor(v) else v for k, v in x.items()}

def _scan_and_grads(x, backend):
    leaves = {k: v.requires_grad_() for k, v in x.items() if torch.is_tensor(v)}
    y, last = selective_scan(**x, backend=backend)
    grads = torch.autograd.grad(y.square().mean() + last.square().mean(), list(leaves.values()))
    return y, last, dict(zip(leaves, grads))

@pytest.mark.parametrize('backend', ['scan', 'triton'])
@pytest.mark.parametrize('d,l,dt_scale', [(6, 257, 1.0), (6, 300, 30.0), (40, 1000, 1.0)])
def test_cuda_scan_equals_cpu_step(backend, d, l, dt_scale, scan_inputs):
    ref = _scan_and_grads(scan_inputs(2, d, 16, l, dt_scale), 'step')
    x = _cuda(scan_inputs(2, d, 16, l, dt_scale))
    y, last, grads = _scan_and_grads(x, backend)
    torch.testing.assert_close(y.cpu(), ref[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(last.cpu(), ref[1], atol=1e-5, rtol=1e-4)
    for k, g in grads.items(): torch.testing.assert_close(g.cpu(), ref[2][k], atol=1e-5, rtol=1e-4, msg=f'd{k}')

def test_triton_memory_is_linear_in_length(scan_inputs):
    """The point of the kernel: no (b, l, d, n) states. Forward + backward at d 512, L 4096 peaks at < 1/4 of the
    doubling scan's."""
    x = _cuda(scan_inputs(2, 512, 16, 4096, 1.0))
    peak = {}
    for backend in ('scan', 'triton'):
        xs = {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in x.items()}
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        _scan_and_grads(xs, backend)
        torch.cuda.synchronize()
        peak[backend] = torch.cuda.max_memory_allocated() - start
    assert peak['triton'] < peak['scan'] / 4, peak

def test_mamba_ssm_equals_scan_where_installed(scan_inputs):
    if not mamba_ssm_available(torch.device('cuda')):
        pytest.skip('mamba_ssm is not installed: the optional accelerator is not compared')
    x = {k: v for k, v in _cuda(scan_inputs(2, 64, 16, 300, 1.0)).items() if k != 'h0'}
    y1, s1, g1 = _scan_and_grads(dict(x), 'scan')
    y2, s2, g2 = _scan_and_grads({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in x.items()},
                                 'mamba_ssm')
    torch.testing.assert_close(y2, y1, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(s2, s1, atol=1e-4, rtol=1e-3)
    for k in g1: torch.testing.assert_close(g2[k], g1[k], atol=1e-4, rtol=1e-3, msg=f'd{k}')

@pytest.mark.parametrize('arch,extra', [('pure', {}), ('hybrid', {}), ('transformer', {}), ('mamba2', {}),
                                        ('pure', dict(heads='hierarchical', text_direction='bidirectional'))])
def test_model_on_cuda_equals_cpu(arch, extra, utts, vocab):
    "The same weights give the same logits and durations on CUDA (auto backend: Triton for Mamba-1) as on the CPU."
    torch.manual_seed(0)
    cpu = TTSModel(ModelConfig(arch=arch, vocab_size=len(vocab), **extra))
    gpu = TTSModel(ModelConfig(arch=arch, vocab_size=len(vocab), **extra)).cuda()
    gpu.load_state_dict(cpu.state_dict())
    b = collate(utts[:3], vocab)                                    # padded: three lengths
    (l1, d1, _), (l2, d2, _) = cpu(*_args(b)), gpu(*_args(b.to('cuda')))
    torch.testing.assert_close(l2.cpu(), l1, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(d2.cpu(), d1, atol=1e-4, rtol=1e-4)

def _args(b): return b.phonemes, b.phoneme_mask, b.durations, b.codes, b.frame_mask

def test_bf16_autocast_training_learns(utts, vocab):
    """Under bf16 autocast the weights stay fp32, the loss is computed in fp32, and 40 steps on one utterance cut it
    by half."""
    torch.manual_seed(0)
    model = TTSModel(ModelConfig(arch='pure', vocab_size=len(vocab))).cuda()
    opt, b, losses = torch.optim.AdamW(model.parameters(), lr=3e-3), collate(utts[:1], vocab).to('cuda'), []
    for _ in range(40):
        with torch.autocast('cuda', torch.bfloat16):
            logits, log_dur, _ = model(*_args(b))
            loss = loss_fn(logits, log_dur, b)[0]
        assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(map(math.isfinite, losses)) and losses[-1] < 0.5 * losses[0], losses[::8]

def test_flash_attention_takes_our_unpadded_transformer_block():
    """An unpadded batch reaches SDPA with no mask, so the flash kernel (which takes none) can run it, and agrees with
    the math kernel."""
    from torch.nn.attention import sdpa_kernel, SDPBackend
    torch.manual_seed(0)
    block = make_block(ModelConfig(arch='transformer', d_model=256)).cuda().to(torch.bfloat16)
    x = torch.randn(2, 512, 256, device='cuda', dtype=torch.bfloat16)
    mask = torch.ones(2, 512, dtype=torch.bool, device='cuda')
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION): flash = block(x, mask)[0]
    with sdpa_kernel(SDPBackend.MATH): plain = block(x, mask)[0]
    torch.testing.assert_close(flash.float(), plain.float(), atol=2e-2, rtol=2e-2)

def test_cuda_run_trains_and_resumes(tmp_path):
    "A fragment run on CUDA: bf16, CUDA tensor peak recorded every step, and a second call with more steps resumes."
    run = resolve_run_config('tiny', steps=6, device='cuda')
    s6 = train(run.model, run.train, tmp_path/'run', run.preset, progress=False)
    cfg = json.loads((tmp_path/'run'/'config.json').read_text())
    assert cfg['device'] == 'cuda' and s6['steps'] == 6
    # the peak of the step's live tensors, as logged: at least the fp32 weights and AdamW's two moments
    assert s6['tensor_peak_mb'] == max(read_metrics(tmp_path/'run')['tensor_peak_mb'])
    assert s6['tensor_peak_mb'] > 3 * s6['params']['total'] * 4 / 2**20, (s6['tensor_peak_mb'], s6['params'])
    run = resolve_run_config('tiny', steps=10, device='cuda')
    s10 = train(run.model, run.train, tmp_path/'run', run.preset, progress=False)
    assert s10['steps'] == 10 and read_metrics(tmp_path/'run')['step'] == [float(i) for i in range(1, 11)]

@pytest.mark.parametrize('arch', ['pure', 'mamba2', 'hybrid'])
def test_a_mamba_training_step_never_waits_for_the_gpu(tmp_path, arch):
    """Two steps and their measures with CUDA's sync debug mode at 'error': any host synchronisation inside them
    raises (a `.item()`, a boolean-mask gather, a pageable copy). The transformer is left out: its attention reads
    `mask.all()` once per layer so that an unpadded batch gets the flash kernel."""
    from mambatts_nb.train import setup, _step, _measures
    from mambatts_nb.metrics import StepTimer
    run = resolve_run_config('tiny', arch=arch, steps=3, batch_size=2, device='cuda')
    s = setup(run.model, run.train, tmp_path/'run', run.preset, progress=False)
    timer = StepTimer(s.device)
    _step(s, run.train, 1, timer, True)                 # Triton compiles, cuBLAS initialises: outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        for step in (2, 3):
            b, logits, log_dur, tok, dur = _step(s, run.train, step, timer, True)
            m = _measures(b, logits, log_dur, tok, dur)
    finally: torch.cuda.set_sync_debug_mode('default')
    ms = StepTimer.read(timer.take())
    assert set(ms) == {'fwd', 'bwd', 'opt'} and all(v > 0 for v in ms.values()), ms
    assert m.shape == (15,) and m[0].item() == b.frame_mask.sum().item() and math.isfinite(m[2].item())
