"Corpus folders in the four layouts: recognised, resampled to 24 kHz mono, bad rows skipped with reasons, clear errors."
import json, pytest, soundfile as sf
from pathlib import Path
from mambatts_nb.corpora import LAYOUTS, read_corpus, load_folder, write_test_corpus, prepare
from mambatts_nb.data import corpus_sentences
from mambatts_nb.runs import read_config, read_metrics, resolve_run_config
from mambatts_nb.train import train

@pytest.fixture(scope='module')
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp('corpora')
    return {k: write_test_corpus(root, k, corpus_sentences()[3:6]) for k in LAYOUTS}

@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_every_layout_keeps_the_good_rows_at_the_right_length(corpora, layout, codec):
    layout_found, entries = read_corpus(str(corpora[layout]))
    assert layout_found == layout and len(entries) == 3 + 5         # five bad rows, listed, then skipped
    utts, skips = load_folder(str(corpora[layout]), codec, progress=False)
    assert sorted(u.id.split('_')[-1] for u in utts) == ['u000', 'u001', 'u002']
    audio = {e.id: e.audio for e in entries}
    for u in utts:
        info = sf.info(audio[u.id])
        assert abs(u.n_frames - info.duration * 75) <= 2, (u.n_frames, info.duration)  # resampled, not reinterpreted
    assert sorted(s['reason'].split(':')[0] for s in skips) == sorted(
        ['missing audio', 'empty transcript', 'empty audio', 'unreadable audio', 'shorter than min_seconds'])

def test_formats_and_channels_as_the_corpora_ship_them(corpora):
    assert sf.info(corpora['commonvoice']/'clips'/'u000.mp3').format == 'MP3'
    opus = list((corpora['mls']/'train'/'audio').rglob('*.opus'))
    assert opus and sf.info(opus[0]).subtype == 'OPUS'
    assert sf.info(corpora['ljspeech']/'wavs'/'u002.wav').channels == 2

def test_length_bounds_and_the_all_skipped_error(corpora, codec):
    with pytest.raises(ValueError, match=r"No usable utterance in .*longer than max_seconds ×3"):
        load_folder(str(corpora['ljspeech']), codec, max_seconds=0.6, progress=False)

@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_training_on_a_corpus_folder_prepares_aligns_and_trains(corpora, layout, tmp_path):
    "A real-layout folder with no phoneme timings: train() prepares it, learns its durations, writes them, and trains."
    run = resolve_run_config('tiny', data=f"{layout}:{corpora[layout]}", steps=2)
    s = train(run.model, run.train, tmp_path/'run', run.preset, progress=False)
    config = read_config(tmp_path/'run')
    # under 10 utterances: none held out
    assert config['n_train'] == 3 and config['n_heldout'] == 0 and config['baselines']['on'] == 'train'
    assert s['steps'] == 2 and s['final_acc'] == read_metrics(tmp_path/'run')['acc'][-1]
    assert s['final_acc'] == pytest.approx(sum(s['acc_cb']) / 8, abs=1e-6) and s['heldout_acc'] is None
    d = Path(prepare(f"{layout}:{corpora[layout]}", progress=False)['dir'])
    rows = [json.loads(l) for l in (d/'manifest.jsonl').read_text().splitlines()]
    assert len(rows) == 3 and all(sum(r['durations']) == r['n_frames'] and min(r['durations']) >= 1
                                  and len(r['durations']) == len(r['phonemes']) for r in rows)
    assert (d/'alignments.html').is_file() and json.loads((d/'aligned.json').read_text())['utterances'] == 3

def test_a_folder_that_is_no_corpus_is_named(tmp_path):
    "What a notebook's or the command line's `data` that is neither a protocol nor a corpus folder stops with."
    run = resolve_run_config('tiny', data=str(tmp_path/'nothing'), steps=1)
    with pytest.raises(FileNotFoundError) as e: train(run.model, run.train, tmp_path/'run2', run.preset, progress=False)
    assert str(e.value) == ("data must be one of fragment, corpus, corpus-multi, corpus-large or a corpus folder "
                            "([layout:]folder, "
                            f"layouts ljspeech, mailabs, commonvoice, mls); {str(tmp_path/'nothing')!r} is neither")

@pytest.mark.slow
def test_prepare_resumes_after_kill_9_to_an_identical_manifest(tmp_path, codec):
    "A straight prepare, then the same corpus prepared by a process killed -9 mid-way and rerun: the same manifest."
    import os, shutil, signal, subprocess, sys, time
    from mambatts_nb.corpora import prepare, corpus_dir
    folder = write_test_corpus(tmp_path, 'ljspeech', corpus_sentences()[6:14], bad=True)
    straight = prepare(str(folder), codec, progress=False)
    d = corpus_dir(str(folder), codec)
    expected = [(d/f).read_text() for f in ('manifest.jsonl', 'skipped.jsonl')]
    assert straight['utterances'] == 8 and straight['encoded'] == 8 and straight['audio_s_per_wall_s'] > 0
    shutil.rmtree(d)
    code = f'from mambatts_nb.corpora import prepare; prepare({str(folder)!r}, progress=False)'
    p = subprocess.Popen([sys.executable, '-c', code])
    for _ in range(600):                                             # kill once some, not all, rows are written
        rows = (d/'manifest.jsonl').read_text().count('\n') if (d/'manifest.jsonl').is_file() else 0
        if rows >= 2 or p.poll() is not None: break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert 2 <= rows < 8, rows
    resumed = prepare(str(folder), codec, progress=False)
    assert [(d/f).read_text() for f in ('manifest.jsonl', 'skipped.jsonl')] == expected
    # finished rows were not redone (one may have had its tokens written)
    assert resumed['encoded'] + resumed['reused'] <= 8 - rows + 1
    shutil.rmtree(d)                                              # threads: the same manifest, in the corpus's order
    two = prepare(str(folder), codec, progress=False, workers=2)
    assert [(d/f).read_text() for f in ('manifest.jsonl', 'skipped.jsonl')] == expected and two['encoded'] == 8
    with pytest.raises(ValueError, match='workers'):
        prepare(str(folder), codec, progress=False, workers=0)
