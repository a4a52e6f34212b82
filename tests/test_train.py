"The training notebook through papermill, bad parameters, resume and skip."
import csv, json
from pathlib import Path
import papermill as pm, pytest, soundfile as sf
from mambatts_nb.config import model_config, TrainConfig
from mambatts_nb.train import train, COLUMNS
from mambatts_nb.evaluate import evaluate_run
from mambatts_nb.metrics import ACC_THRESHOLDS, DUR_THRESHOLDS

ROOT = Path(__file__).resolve().parents[1]
TIMING = {'wall_s', 'fwd_ms', 'bwd_ms', 'opt_ms', 'step_ms', 'tokens_per_s', 'tensor_peak_mb'}

def run_notebook(tmp_path, **params):
    return pm.execute_notebook(ROOT/'nbs'/'train.ipynb', tmp_path/'executed.ipynb', parameters=dict(out_dir=str(tmp_path), **params),
                               kernel_name='python3', progress_bar=False, cwd=str(ROOT/'nbs'))

def test_papermill_default_run_reaches_95_percent(tmp_path, codec):
    run_notebook(tmp_path)
    run = tmp_path/'train'/'tiny-fragment-s0'
    for f in ('config.json', 'metrics.csv', 'milestones.json', 'summary.json', 'checkpoint.pt', 'model.safetensors', 'curves.html'):
        assert (run/f).is_file() and (run/f).stat().st_size > 0, f
    rows = list(csv.DictReader((run/'metrics.csv').open()))
    assert [int(r['step']) for r in rows] == list(range(1, 201)) and list(rows[0]) == COLUMNS
    ms = json.loads((run/'milestones.json').read_text())
    assert list(ms['accuracy']) == [str(t) for t in ACC_THRESHOLDS] and list(ms['duration']) == [str(t) for t in DUR_THRESHOLDS]
    summary = json.loads((run/'summary.json').read_text())
    assert summary['finished'] and summary['step_95'] is not None and summary['peak_acc'] >= 0.95
    assert ms['accuracy']['95']['step'] == summary['step_95']
    config = json.loads((run/'config.json').read_text())
    assert config['codec'] == codec.label and config['backend'] == 'fused' and config['record']['packages']['torch']
    wavs = sorted((run/'samples').glob('*.wav'))
    assert [w.stem for w in wavs] == ['prompt_1', 'prompt_2', 'prompt_3', 'reference_codec', 'reference_generated']
    for w in wavs:
        audio, sr = sf.read(w)
        assert sr == 24000 and len(audio) > 2400
    samples = json.loads((run/'samples'/'samples.json').read_text())
    assert samples[0]['codec'] == codec.label
    gen = next(s for s in samples if s['name'] == 'reference_generated')
    assert gen['log_mel_l1'] >= 0 and gen['mcd_db'] >= 0 and gen['duration_error_frames'] >= 0 and 0 <= gen['vuv_error'] <= 1
    assert gen['log_f0_rmse_cents'] is None or gen['log_f0_rmse_cents'] >= 0
    assert json.loads((run/'summary.json').read_text())['samples'] == samples

@pytest.mark.parametrize('arch,heads', [('transformer', 'flat'), ('mamba2', 'hierarchical')])   # hybrid: test_phase's sweep
def test_papermill_other_archs(tmp_path, arch, heads):
    run_notebook(tmp_path, arch=arch, heads=heads, steps=20, samples=False)
    s = json.loads(next((tmp_path/'train').glob(f'tiny-{arch}*/summary.json')).read_text())
    assert s['arch'] == arch and s['steps'] == 20 and s['final_acc'] > 0
    config = json.loads(next((tmp_path/'train').glob(f'tiny-{arch}*/config.json')).read_text())
    assert config['model']['heads'] == heads and ('code_embeds' in s['params']) == (heads == 'hierarchical')

@pytest.mark.parametrize('params,msg', [
    (dict(arch='lstm'), "Unknown arch 'lstm'; accepted: pure, hybrid, transformer"),
    (dict(preset='huge'), "Unknown preset 'huge'; accepted: tiny,"),
    (dict(steps=0), 'steps must be a positive integer, got 0'),
    (dict(kernels='huge'), "one of small, medium, large, multi, xlarge, got 'huge'"),
    (dict(data='/no/such/folder'), "'/no/such/folder' is neither"),
])
def test_bad_parameters_fail_clearly(tmp_path, params, msg):
    with pytest.raises(pm.PapermillExecutionError) as e: run_notebook(tmp_path, **params)
    assert msg in str(e.value)

def _rows(run): return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader((run/'metrics.csv').open())]

def test_resume_continues_exactly_and_finished_runs_are_skipped(tmp_path):
    mcfg = model_config('tiny', d_model=64)
    train(mcfg, TrainConfig(steps=8, ckpt_every=4), tmp_path/'a', progress=False)
    first = train(mcfg, TrainConfig(steps=4, ckpt_every=4), tmp_path/'b', progress=False)
    assert first['steps'] == 4
    train(mcfg, TrainConfig(steps=8, ckpt_every=4), tmp_path/'b', progress=False)
    assert _rows(tmp_path/'a') == _rows(tmp_path/'b') and len(_rows(tmp_path/'a')) == 8
    before = (tmp_path/'b'/'metrics.csv').read_bytes()
    again = train(mcfg, TrainConfig(steps=8, ckpt_every=4), tmp_path/'b', progress=False)
    assert again['steps'] == 8 and (tmp_path/'b'/'metrics.csv').read_bytes() == before

def test_corrupt_checkpoint_is_reported_and_kept(tmp_path):
    run = tmp_path/'c'; run.mkdir()
    (run/'checkpoint.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match="checkpoint.pt' is corrupt or unreadable"):
        train(model_config('tiny', d_model=64), TrainConfig(steps=2), run, progress=False)
    assert (run/'checkpoint.pt').read_bytes() == b'not a checkpoint'

def test_other_config_in_same_run_dir_is_refused(tmp_path):
    train(model_config('tiny', d_model=64), TrainConfig(steps=2), tmp_path/'d', progress=False)
    with pytest.raises(ValueError, match='holds a run with a different configuration'):
        train(model_config('tiny', d_model=32), TrainConfig(steps=2), tmp_path/'d', progress=False)

def test_corpus_protocol_logs_heldout_accuracy(tmp_path):
    s = train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1),
              TrainConfig(steps=4, eval_every=2, data='corpus', batch_size=2), tmp_path/'corpus', progress=False)
    rows = list(csv.DictReader((tmp_path/'corpus'/'metrics.csv').open()))
    assert [r['heldout_acc'] != '' for r in rows] == [False, True, False, True]
    config = json.loads((tmp_path/'corpus'/'config.json').read_text())
    assert config['n_heldout'] == 20 and config['n_train'] >= 180
    assert 0 <= s['heldout_acc'] <= 1 and abs(s['heldout_acc'] - float(rows[-1]['heldout_acc'])) < 1e-6   # csv keeps 6 digits
    assert s['baselines']['on'] == 'heldout' and len(s['heldout_ce_cb']) == 8 and s['nats_gained'] is not None
    a = s['heldout_audio']                         # through the codec, against the true codes' audio; guessing sounds like silence
    assert a['n'] == 4 and a['majority'] > 2 and 0 < a['generated'] < a['majority'] + 1, a
    assert 0 < a['mcd_db'] < 1000 and 0 <= a['vuv_error'] <= 1 and (a['log_f0_rmse_cents'] is None or a['log_f0_rmse_cents'] >= 0), a

def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    with pytest.raises(FloatingPointError, match=r'Loss became (nan|inf) at step \d+; stopped'):
        train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1), TrainConfig(steps=20, lr=1e30), tmp_path/'nan', progress=False)
    rows = list(csv.DictReader((tmp_path/'nan'/'metrics.csv').open()))
    assert 1 <= len(rows) < 20 and all(r['loss'] not in ('nan', 'inf') for r in rows)

def test_mambatts_generate_cli_writes_a_wav(tmp_path):
    import subprocess, sys
    train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1), TrainConfig(steps=2), tmp_path/'run', progress=False)
    out = tmp_path/'litwo.wav'
    cli = Path(sys.executable).parent/'mambatts'
    r = subprocess.run([str(cli), 'generate', 'Litwo! Ojczyzno moja!', '--run', str(tmp_path/'run'), '--out', str(out), '--chunk', '20'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    audio, sr = sf.read(out)
    assert sr == 24000 and len(audio) > 2400 and 'codec:' in r.stdout
    # a user's mistake: one line naming it and exit status 2; the traceback only with --debug
    for args, msg in ((['Litwo!', '--run', str(tmp_path/'nope')], f"error: '{tmp_path/'nope'/'config.json'}' not found"),
                      (['', '--run', str(tmp_path/'run')], "error: Empty text '': give at least one Polish word")):
        r = subprocess.run([str(cli), 'generate', *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith(msg) and 'Traceback' not in r.stderr, r.stderr
    r = subprocess.run([str(cli), 'generate', '', '--run', str(tmp_path/'run'), '--debug'], capture_output=True, text=True)
    assert r.returncode == 1 and 'Traceback' in r.stderr and r.stderr.splitlines()[-1].startswith('ValueError: Empty text')

def test_listen_notebook_renders_dashboard_with_audio(tmp_path, short_run_root):
    out = tmp_path/'listen.ipynb'
    pm.execute_notebook(ROOT/'nbs'/'listen.ipynb', out, parameters=dict(root=str(short_run_root)), kernel_name='python3',
                        progress_bar=False, cwd=str(ROOT/'nbs'))
    nb = json.loads(out.read_text())
    views = [o for c in nb['cells'] for o in c.get('outputs', []) if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    state = nb['metadata']['widgets']['application/vnd.jupyter.widget-state+json']['state']
    audio = [w for w in state.values() if w['model_name'] == 'AudioModel']
    assert views and len(audio) == 5 and all(w['state'].get('format') == 'wav' for w in audio)

def test_hierarchical_heldout_free_running_and_teacher_forced(tmp_path):
    "A hierarchical run's summary has held-out measures both free-running and given the true lower codebooks; evaluate_run recomputes both."
    s = train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1, heads='hierarchical'),
              TrainConfig(steps=3, batch_size=2, data='corpus'), tmp_path/'h', progress=False)
    for k in ('heldout_teacher_acc', 'heldout_teacher_ce'): assert s[k] is not None and s[k] == s[k]
    assert len(s['heldout_teacher_acc_cb']) == 8 and s['heldout_teacher_acc_cb'][0] == pytest.approx(s['heldout_acc_cb'][0])  # codebook 0 reads no codes
    free, forced = evaluate_run(tmp_path/'h'), evaluate_run(tmp_path/'h', teacher=True)
    assert free['heldout_acc'] == pytest.approx(s['heldout_acc']) and free['heldout_ce'] == pytest.approx(s['heldout_ce'])
    assert forced['heldout_teacher_ce'] == pytest.approx(s['heldout_teacher_ce']) and forced['heldout_teacher_acc_cb'] == pytest.approx(s['heldout_teacher_acc_cb'])
    # a run trained before the teacher-forced measures were recorded gets them added to its summary (--save)
    (tmp_path/'h'/'summary.json').write_text(json.dumps({k: v for k, v in s.items() if not k.startswith('heldout_teacher')}))
    with pytest.raises(ValueError, match='save stores the teacher-forced measures'): evaluate_run(tmp_path/'h', save=True)
    evaluate_run(tmp_path/'h', teacher=True, save=True)
    again = json.loads((tmp_path/'h'/'summary.json').read_text())
    assert again['heldout_teacher_acc'] == pytest.approx(s['heldout_teacher_acc']) and again['heldout_acc'] == s['heldout_acc']
    train(model_config('tiny', d_model=32, text_layers=1, audio_layers=1), TrainConfig(steps=1), tmp_path/'f', progress=False)
    with pytest.raises(ValueError, match="trained on 'fragment', which has no held-out utterances"): evaluate_run(tmp_path/'f')
