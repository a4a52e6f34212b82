"Corpus folders in the four layouts: recognised, resampled to 24 kHz mono, bad rows skipped with reasons, clear errors."
import pytest, soundfile as sf
from mambatts_nb.corpora import LAYOUTS, read_corpus, load_folder, write_test_corpus
from mambatts_nb.data import corpus_sentences
from mambatts_nb.runs import resolve_run_config
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
        assert abs(u.n_frames - info.duration * 75) <= 2, (u.n_frames, info.duration)   # resampled, not reinterpreted
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

def test_training_on_a_corpus_folder_stops_at_the_missing_alignment(corpora, tmp_path):
    run = resolve_run_config('tiny', data=f"mls:{corpora['mls']}", steps=1)
    with pytest.raises(ValueError, match='have no phoneme durations'):
        train(run.model, run.train, tmp_path/'run', run.preset, progress=False)
    with pytest.raises(FileNotFoundError, match=r"or a corpus folder \(\[layout:\]folder, layouts ljspeech, mailabs"):
        run = resolve_run_config('tiny', data=str(tmp_path/'nothing'), steps=1)
        train(run.model, run.train, tmp_path/'run2', run.preset, progress=False)
