"The aligner end to end: the papermill notebook's espeak check, and `mambatts align` on a corpus folder."
import json, subprocess, sys
from pathlib import Path
import papermill as pm, pytest
from mambatts_nb.corpora import write_test_corpus, prepare
from mambatts_nb.data import corpus_sentences, CORE_SENTENCES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow               # a notebook, a subprocess, and the aligner fitted on the whole corpus

def test_align_notebook_validates_on_espeak_speech(tmp_path):
    pm.execute_notebook(ROOT/'nbs'/'align.ipynb', tmp_path/'align.ipynb', kernel_name='python3', progress_bar=False,
                        parameters=dict(data='espeak', voice='pl+m3', rate=220, n=8, epochs=3, out_dir=str(tmp_path)),
                        cwd=str(ROOT/'nbs'))
    out = tmp_path/'align'/'espeak-pl+m3-r220-s0'
    rec = json.loads((out/'validation.json').read_text())
    assert rec['utterances'] == 8 and rec['voice'] == 'pl+m3' and rec['rate'] == 220 and len(rec['history']) == 3
    # 3 epochs on 8 sentences, measured: 472 boundaries, 3.18 frames off on average, 31% within 1 frame, 48% within 2
    assert 400 < rec['boundaries'] < 550 and 2 < rec['mean_frames'] < 4.5, rec
    assert 0.2 < rec['within_1'] < rec['within_2'] and 0.35 < rec['within_2'] < 0.7, rec
    assert (out/'alignments.html').stat().st_size > 100_000

def test_align_cli_writes_durations_into_the_manifest(tmp_path):
    root = write_test_corpus(tmp_path, 'commonvoice', corpus_sentences()[10:14], bad=True)
    p = subprocess.run([Path(sys.executable).parent/'mambatts', 'align', str(root), '--epochs', '3'],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'alignments.html' in p.stdout
    d = Path(prepare(str(root), progress=False)['dir'])
    rows = [json.loads(l) for l in (d/'manifest.jsonl').read_text().splitlines()]
    assert len(rows) == 4 and all(sum(r['durations']) == r['n_frames'] for r in rows)

def test_training_on_learned_corpus_durations(tmp_path):
    "durations='learned': the corpus protocol's exact durations replaced by the aligner's — close to them, not equal."
    from mambatts_nb.align import learned_corpus_durations, boundary_errors
    from mambatts_nb.data import load_corpus
    from mambatts_nb.runs import resolve_run_config, read_config
    from mambatts_nb.train import train
    run = resolve_run_config('tiny', data='fragment', durations='learned', steps=1)
    assert run.name == 'tiny-dur-learned-fragment-s0'
    train(run.model, run.train, tmp_path/run.name, run.preset, progress=False)
    assert read_config(tmp_path/run.name)['train']['durations'] == 'learned'
    learned, utts = learned_corpus_durations(progress=False), load_corpus(range(CORE_SENTENCES), progress=False)
    assert all(learned[u.id].sum() == u.n_frames and len(learned[u.id]) == len(u.phonemes) for u in utts)
    e = boundary_errors([learned[u.id] for u in utts], [u.durations for u in utts])
    assert 0 < e['mean_frames'] < 1.5 and e['within_2'] > 0.85, e        # measured 0.95 / 93.9% (README)
