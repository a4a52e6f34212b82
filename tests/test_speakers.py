"Several speakers: corpus-multi through the training notebook, per-speaker held-out accuracy, the speaker option of generate, CLI and dashboard."
import json, subprocess, sys
from pathlib import Path
import papermill as pm, pytest, soundfile as sf, torch
from mambatts_nb.data import CORPUS_SPEAKERS, load_corpus, split
from mambatts_nb.checkpoint import load_run
from mambatts_nb.generate import synthesise

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(CORPUS_SPEAKERS)

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A tiny corpus-multi run trained by the notebook, its samples in the f2 voice."
    out = tmp_path_factory.mktemp('multi')
    pm.execute_notebook(ROOT/'nbs'/'train.ipynb', out/'executed.ipynb', kernel_name='python3', progress_bar=False, cwd=str(ROOT/'nbs'),
                        parameters=dict(out_dir=str(out), data='corpus-multi', steps=4, batch_size=2, hidden=32, layers=1,
                                        speaker='pl+f2@150'))
    return out/'train'/'tiny-L1-H32-b2-corpus-multi-s0'

def test_corpus_multi_split_keeps_every_speaker():
    utts = load_corpus(range(30), progress=False, multi=True)
    train, held = split(utts, 9)
    assert {u.speaker for u in train} == set(NAMES) and {u.speaker for u in utts} == set(NAMES)

def test_run_has_speakers_and_per_speaker_heldout_accuracy(run):
    config = json.loads((run/'config.json').read_text())
    assert config['model']['speakers'] == NAMES
    s = json.loads((run/'summary.json').read_text())
    assert set(s['heldout_by_speaker']) == set(NAMES)
    for v in s['heldout_by_speaker'].values(): assert 0 <= v['acc'] <= 1 and 0 < v['majority_acc'] < 1
    assert s['params']['speaker'] == 3 * 32
    assert {r['speaker'] for r in json.loads((run/'samples'/'samples.json').read_text())} == {'pl+f2@150'}

def test_the_speaker_changes_what_is_generated(run):
    model, vocab, _ = load_run(run)
    ref = load_corpus([0], progress=False)[0]
    outs = {n: synthesise(model, vocab, 'Dzień dobry, jak się masz?', ref, speaker=n)[0] for n in NAMES}
    assert len({tuple(o['durations'].tolist()) + tuple(o['codes'].flatten().tolist()) for o in outs.values()}) == 3
    again = synthesise(model, vocab, 'Dzień dobry, jak się masz?', ref, speaker=NAMES[1])[0]
    assert torch.equal(again['codes'], outs[NAMES[1]]['codes'])
    with pytest.raises(ValueError, match=r"speaker 'nobody' is not one of this model's speakers: pl\+f2@150, pl\+m1@220, pl@175"):
        synthesise(model, vocab, 'tak', ref, speaker='nobody')

def test_generate_cli_speaker(run, tmp_path):
    cli = Path(sys.executable).parent/'mambatts'
    out = tmp_path/'f2.wav'
    r = subprocess.run([str(cli), 'generate', 'Dzień dobry.', '--run', str(run), '--out', str(out), '--speaker', 'pl+m1@220'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sf.info(out).duration > 0.1
    r = subprocess.run([str(cli), 'generate', 'Dzień dobry.', '--run', str(run), '--out', str(tmp_path/'x.wav'), '--speaker', 'nobody'],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "speaker 'nobody' is not one of this model's speakers" in r.stderr.splitlines()[-1]
    assert not (tmp_path/'x.wav').exists()

def test_dashboard_offers_the_runs_speakers(run):
    from mambatts_nb.widgets import Dashboard
    d = Dashboard(run.parent.parent)
    assert list(d.speaker.options) == NAMES and not d.speaker.disabled
    d.speaker.value = 'pl+m1@220'
    assert d.synthesise().stat().st_size > 1000

def test_speaker_report_script(run, tmp_path):
    out = tmp_path/'speakers.md'
    r = subprocess.run([sys.executable, str(ROOT/'scripts'/'speaker-report'), str(run.parent), '--out', str(out), '--n', '1'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    md = out.read_text()
    for n in NAMES: assert f'| {n} | ' in md                        # a per-speaker accuracy row each
    assert f'| {run.name} | ' in md and 'Order of the speakers by median F0' in md
    rows = {r['speaker']: r for r in json.loads(out.with_suffix('.json').read_text())['f0'][0]}
    assert set(rows) == set(NAMES) and all(r['n_generated'] == 1 and r['n_true'] == 1 for r in rows.values())
    f = {k: r['true_f0_hz'] for k, r in rows.items()}       # the voices' own pitch survives the codec: f2 well above both male voices
    assert f['pl+f2@150'] > 1.5 * max(f['pl@175'], f['pl+m1@220']) and 70 < min(f.values()), f
    r = subprocess.run([sys.executable, str(ROOT/'scripts'/'speaker-report'), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0 and 'no finished multi-speaker runs under' in r.stderr
