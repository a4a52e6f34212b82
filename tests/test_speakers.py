"""Several speakers: corpus-multi through the training notebook, per-speaker held-out accuracy, the speaker option of
generate, CLI and dashboard."""
import json, subprocess, sys
from pathlib import Path
import pytest, soundfile as sf, torch
from mambatts_nb.data import CORPUS_SPEAKERS, CORE_SENTENCES, load_corpus, split
from mambatts_nb.checkpoint import load_run
from mambatts_nb.generate import synthesise

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(CORPUS_SPEAKERS)

@pytest.fixture(scope='module')
def run(tmp_path_factory, train_notebook):
    "A tiny corpus-multi run trained by the notebook, its samples in the f2 voice (this file: one xdist worker)."
    out = tmp_path_factory.mktemp('multi')
    train_notebook(out, data='corpus-multi', steps=4, batch_size=2, hidden=32, layers=1, speaker='pl+f2@150')
    return out/'train'/'tiny-L1-H32-b2-corpus-multi-s0'

def test_corpus_multi_split_keeps_every_speaker():
    utts = load_corpus(range(30), progress=False, multi=True)
    train, held = split(utts, 9)
    assert {u.speaker for u in train} == set(NAMES) and {u.speaker for u in utts} == set(NAMES)

@pytest.mark.slow
def test_run_has_speakers_and_per_speaker_heldout_accuracy(run):
    config = json.loads((run/'config.json').read_text())
    assert config['model']['speakers'] == NAMES
    s = json.loads((run/'summary.json').read_text())
    by = s['heldout_by_speaker']
    assert set(by) == set(NAMES)
    # each speaker's held-out frames: weighted by them, the speakers' measures are the whole held-out set's
    held = split(load_corpus(range(CORE_SENTENCES), progress=False, multi=True), 20)[1]
    frames = {k: sum(u.n_frames for u in held if u.speaker == k) for k in NAMES}
    def weighted(key): return sum(frames[k] * v[key] for k, v in by.items()) / sum(frames.values())
    assert weighted('acc') == pytest.approx(s['heldout_acc'], rel=1e-6)
    assert weighted('majority_acc') == pytest.approx(s['baselines']['majority_acc'], rel=1e-6)
    # measured: the floors 0.028 (f2), 0.031 (m1), 0.093 (pl); 4 steps learn next to nothing (~0.001, chance)
    assert all(0.01 < v['majority_acc'] < 0.2 and v['acc'] < v['majority_acc'] for v in by.values()), by
    assert s['params']['speaker'] == 3 * 32
    assert {r['speaker'] for r in json.loads((run/'samples'/'samples.json').read_text())} == {'pl+f2@150'}

@pytest.mark.slow
def test_the_speaker_changes_what_is_generated(run):
    model, vocab, _ = load_run(run)
    ref = load_corpus([0], progress=False)[0]
    outs = {n: synthesise(model, vocab, 'Dzień dobry, jak się masz?', ref, speaker=n)[0] for n in NAMES}
    assert len({tuple(o['durations'].tolist()) + tuple(o['codes'].flatten().tolist()) for o in outs.values()}) == 3
    again = synthesise(model, vocab, 'Dzień dobry, jak się masz?', ref, speaker=NAMES[1])[0]
    assert torch.equal(again['codes'], outs[NAMES[1]]['codes'])
    with pytest.raises(ValueError,
                       match=r"speaker 'nobody' is not one of this model's speakers: pl\+f2@150, pl\+m1@220, pl@175"):
        synthesise(model, vocab, 'tak', ref, speaker='nobody')

@pytest.mark.slow
def test_generate_cli_speaker(run, tmp_path):
    cli = Path(sys.executable).parent/'mambatts'
    out = tmp_path/'f2.wav'
    r = subprocess.run([str(cli), 'generate', 'Dzień dobry.', '--run', str(run), '--out', str(out),
                        '--speaker', 'pl+m1@220'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sf.info(out).duration > 0.1
    r = subprocess.run([str(cli), 'generate', 'Dzień dobry.', '--run', str(run), '--out', str(tmp_path/'x.wav'),
                        '--speaker', 'nobody'], capture_output=True, text=True)
    assert r.returncode == 2 and "speaker 'nobody' is not one of this model's speakers" in r.stderr.splitlines()[-1]
    assert not (tmp_path/'x.wav').exists()

@pytest.mark.slow
def test_dashboard_offers_the_runs_speakers(run):
    from mambatts_nb.widgets import Dashboard
    d = Dashboard(run.parent.parent)
    assert list(d.speaker.options) == NAMES and not d.speaker.disabled
    d.speaker.value = 'pl+m1@220'
    assert d.synthesise().stat().st_size > 1000

@pytest.mark.slow
def test_speaker_report_script(run, tmp_path):
    out = tmp_path/'speakers.md'
    r = subprocess.run([sys.executable, str(ROOT/'scripts'/'speaker-report'), str(run.parent), '--out', str(out),
                        '--n', '1'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    md = out.read_text()
    for n in NAMES: assert f'| {n} | ' in md                        # a per-speaker accuracy row each
    assert f'| {run.name} | ' in md and 'Order of the speakers by median F0' in md
    rows = {r['speaker']: r for r in json.loads(out.with_suffix('.json').read_text())['f0'][0]}
    assert set(rows) == set(NAMES) and all(r['n_generated'] == 1 and r['n_true'] == 1 for r in rows.values())
    # the voices' own pitch survives the codec: f2 well above both male voices
    f = {k: r['true_f0_hz'] for k, r in rows.items()}
    assert f['pl+f2@150'] > 1.5 * max(f['pl@175'], f['pl+m1@220']) and 70 < min(f.values()), f
    r = subprocess.run([sys.executable, str(ROOT/'scripts'/'speaker-report'), str(tmp_path)], capture_output=True,
                       text=True)
    assert r.returncode != 0 and 'no finished multi-speaker runs under' in r.stderr
