"The prepared GPU check cannot rot: its smoke mode runs every section on the CPU and writes the whole report."
import subprocess, sys, torch, pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ['## Environment', '## CUDA tests', '## One block, forward + backward', '## Whole-model training step',
            '## Whole-model step against input length', '## Phase 2']
pytestmark = pytest.mark.slow                   # the script in a subprocess

def _check(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT/'scripts'/'gpu-check'), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)

def test_smoke_writes_every_section(tmp_path):
    p = _check('--device', 'cpu', '--smoke', '--work', str(tmp_path))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = (tmp_path/'report.md').read_text()
    assert [s for s in SECTIONS if s not in report] == [] and 'FAILED' not in report
    assert '| phase2-pure-L1-H128-fragment |' in report and '| tiny |' in report       # the tables have their rows
    assert '| 64 |' in report and '| 128 |' in report and "Crossover" in report
    assert sorted(d.name for d in (tmp_path/'phase2-cpu').iterdir()) == [
        'phase2-hybrid-small-L1-H128-fragment-s0', 'phase2-pure-L1-H128-fragment-s0']

@pytest.mark.skipif(torch.cuda.is_available(), reason='the error below needs a machine without CUDA')
def test_cuda_without_gpu_is_a_clear_error(tmp_path):
    p = _check('--work', str(tmp_path))
    assert p.returncode != 0 and "device 'cuda' requested but no CUDA GPU is available" in p.stderr
