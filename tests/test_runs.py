"The run layer: one writer per run directory, tensor-peak memory that tells models apart, clean papermill parameters."
import json, subprocess, sys, time
from pathlib import Path
import pytest, torch
from mambatts_nb.config import model_config
from mambatts_nb.data import collate
from mambatts_nb.metrics import tensor_peak_mb, state_tensors
from mambatts_nb.model import TTSModel
from mambatts_nb.model import loss_fn
from mambatts_nb.train import param_groups

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
from mambatts_nb.config import model_config, TrainConfig
from mambatts_nb.train import train
train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1), TrainConfig(steps=int(sys.argv[2]), seed=1),
      sys.argv[1], progress=False)
"""

@pytest.mark.slow
def test_second_run_into_the_same_directory_is_refused_and_the_first_is_unharmed(tmp_path, codec):
    run = tmp_path/'run'
    first = subprocess.Popen([sys.executable, '-c', SCRIPT, str(run), '150'], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run/'.lock.holder.json').exists() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run([sys.executable, '-c', SCRIPT, str(run), '150'], capture_output=True, text=True)
    assert second.returncode != 0
    assert f"Run {str(run)!r} is in use by another process" in second.stderr, second.stderr[-800:]
    assert f'pid {first.pid}' in second.stderr, second.stderr[-800:]
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    rows = (run/'metrics.csv').read_text().splitlines()
    assert len(rows) == 151 and [int(r.split(',')[0]) for r in rows[1:]] == list(range(1, 151))
    assert json.loads((run/'summary.json').read_text())['steps'] == 150 and not (run/'.lock.holder.json').exists()

def test_tensor_peak_memory_differs_between_model_sizes(utts, vocab):
    b = collate(utts[:1], vocab)
    def peak(d):
        torch.manual_seed(0)
        model = TTSModel(model_config('tiny', d_model=d, vocab_size=len(vocab)))
        opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-3)
        def step():
            loss = loss_fn(*model(b.phonemes, b.phoneme_mask, b.durations, b.codes, b.frame_mask)[:2], b)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        step()
        weights_mb = sum(p.numel() for p in model.parameters()) * 4 / 2**20
        return tensor_peak_mb(step, 'cpu', state_tensors(model, opt))[1], weights_mb
    (small, small_w), (big, big_w) = peak(64), peak(256)
    assert small > 3 * small_w and big > 3 * big_w          # weights, gradients, two Adam moments, activations
    assert big - small > 3 * (big_w - small_w)

@pytest.mark.slow
@pytest.mark.parametrize('nb', ['train', 'phase', 'listen', 'bench', 'align'])
def test_papermill_help_lists_every_parameter_without_warnings(nb):
    r = subprocess.run([sys.executable, '-m', 'papermill', '--help-notebook', str(ROOT/'nbs'/f'{nb}.ipynb')],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cell = next(c for c in json.loads((ROOT/'nbs'/f'{nb}.ipynb').read_text())['cells']
                if 'parameters' in c['metadata'].get('tags', []))
    names = [l.split(':')[0].split('=')[0].strip() for l in ''.join(cell['source']).splitlines()
             if l.strip() and not l.lstrip().startswith('#')]               # a comment's own continuation line too
    listed = [l.split(':')[0].strip() for l in r.stdout.splitlines()
              if l.startswith('  ') and ':' in l and not l.startswith('    ')]
    assert listed == names, (listed, names)
    assert 'Unknown type' not in r.stdout and 'Unable to parse' not in r.stdout + r.stderr and 'WARNING' not in r.stderr
