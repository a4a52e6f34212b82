"""One run on several processes (torchrun, DDP, gloo on the CPU): the losses of one process with the same global
batch; resume after kill -9."""
import csv, json, signal, subprocess, sys, time
import psutil, pytest
from mambatts_nb.config import model_config, TrainConfig
from mambatts_nb.train import train

# The tiny model at width 32, the corpus protocol with 1 held-out sentence, a checkpoint every 3 steps.
JOB = """
import sys
from mambatts_nb.config import model_config, TrainConfig
from mambatts_nb.train import train
batch, run_dir = int(sys.argv[1]), sys.argv[2]
train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1),
      TrainConfig(data='corpus', heldout=1, steps=8, ckpt_every=3, batch_size=batch, lr=3e-3, seed=0), run_dir,
      progress=False)
"""
SAME = ['loss', 'token_loss', 'dur_loss', 'acc', 'top10', 'dur_acc', *(f'acc_cb{k}' for k in range(8)), 'heldout_acc',
        'heldout_ce']
pytestmark = pytest.mark.slow

def _launch(tmp_path, nproc, batch, run_dir):
    job = tmp_path/'job.py'
    job.write_text(JOB)
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(nproc)]
    return subprocess.Popen((torchrun if nproc > 1 else [sys.executable]) + [str(job), str(batch), str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

def _rows(run_dir): return list(csv.DictReader((run_dir/'metrics.csv').open()))

def test_two_processes_train_as_one_with_the_same_global_batch_and_resume_after_kill_9(tmp_path):
    one, two = tmp_path/'one', tmp_path/'two'
    p = _launch(tmp_path, 1, 4, one)
    assert p.wait(timeout=600) == 0, p.stdout.read()[-3000:]
    # two processes × 2 utterances; every worker killed with SIGKILL once a step after the first checkpoint is logged
    p = _launch(tmp_path, 2, 2, two)
    deadline = time.time() + 600
    while not ((two/'checkpoint.pt').exists() and (two/'metrics.csv').exists() and len(_rows(two)) >= 5):
        assert p.poll() is None and time.time() < deadline, p.stdout.read()[-3000:]
        time.sleep(0.1)
    workers = psutil.Process(p.pid).children(recursive=True)
    assert len(workers) >= 2
    for w in workers: w.send_signal(signal.SIGKILL)
    assert p.wait(timeout=120) != 0 and not (two/'summary.json').exists()
    killed_at = len(_rows(two))
    p = _launch(tmp_path, 2, 2, two)                               # the same command resumes from the checkpoint
    assert p.wait(timeout=600) == 0, p.stdout.read()[-3000:]
    a, b = _rows(one), _rows(two)
    assert 5 <= killed_at < 8 and [r['step'] for r in b] == [str(s) for s in range(1, 9)]   # rank 0 wrote, once a step
    for ra, rb in zip(a, b):
        for c in SAME:   # metrics.csv keeps 6 significant digits; the runs differ only in float summation order
            if ra[c] or rb[c]:
                assert float(rb[c]) == pytest.approx(float(ra[c]), rel=2e-5, abs=1e-7), (ra['step'], c, ra[c], rb[c])
    config = json.loads((two/'config.json').read_text())
    assert config['world_size'] == 2 and json.loads((one/'config.json').read_text())['world_size'] == 1
    s, s1 = (json.loads((d/'summary.json').read_text()) for d in (two, one))
    assert s['steps'] == 8 and s['heldout_acc'] == pytest.approx(s1['heldout_acc'], rel=1e-5)
    # resuming it with another number of processes is refused, and nothing it wrote changes
    before = (two/'metrics.csv').read_bytes()
    with pytest.raises(ValueError, match=r'was trained by 2 process\(es\); resume it with as many, not 1'):
        train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1),
              TrainConfig(data='corpus', heldout=1, steps=10, ckpt_every=3, batch_size=2, lr=3e-3, seed=0), two,
              progress=False)
    assert (two/'metrics.csv').read_bytes() == before
