"Durations, codec round trip, fallback non-degeneracy, bad text."
import re
import pytest, torch
from mambatts_nb.codec import Codec, N_CODEBOOKS, CODEBOOK_SIZE, HOP, SPECTRAL_LABEL, log_mel_distance
from mambatts_nb.data import to_24k, corpus_sentences, frame_durations
from mambatts_nb.text import speak, normalise

def test_durations_sum_exactly_to_token_counts(utts):
    for u in utts:
        assert u.durations.dtype == torch.long and (u.durations >= 0).all()
        assert int(u.durations.sum()) == u.n_frames == u.codes.shape[1]
        assert len(u.durations) == len(u.phonemes)

def test_cumulative_rounding_never_drifts():
    starts = torch.arange(0, 22050 * 4, 997).tolist()          # 89 phonemes, ~45 ms each
    d = frame_durations(starts, 22050 * 4, 300)
    exact = torch.diff(torch.tensor(starts + [22050 * 4], dtype=torch.float64)) / (22050 * 4) * 300
    assert int(d.sum()) == 300 and (d - exact).abs().max() < 1      # each phoneme within a frame of its true length

def test_codec_round_trip(codec):
    """Shapes, code range, and a decoding close to the input: the spectral codec's measured log-mel distance 0.137,
    silence's 3.74 (pretrained EnCodec is not measured here, a machine without its weights: 10× under silence)."""
    wav = to_24k(speak('Dzień dobry.').audio, 22050)
    codes = codec.encode(wav)
    assert codes.shape == (N_CODEBOOKS, Codec.n_frames(len(wav)))
    assert codes.min() >= 0 and codes.max() < CODEBOOK_SIZE
    out = codec.decode(codes)
    assert out.shape == (codes.shape[1] * HOP,) and torch.isfinite(out).all()
    d, silence = log_mel_distance(out, wav), log_mel_distance(torch.zeros_like(wav), wav)
    assert d < silence / 10, (codec.label, d, silence)
    if codec.label == SPECTRAL_LABEL: assert d < 0.17, d
    with pytest.raises(ValueError, match=r'mono audio of shape \(samples,\), got \(1, '):
        codec.encode(wav[None])
    with pytest.raises(ValueError, match=r'codes of shape \(8, frames\), got \(4, '): codec.decode(codes[:4])
    with pytest.raises(ValueError, match=r'codes must lie in \[0, 1024\)'): codec.decode(codes + 2000)

def test_tokens_are_not_degenerate(codec):
    "A ~5 s clip outside the calibration set uses many distinct codes in every codebook."
    text = ' '.join(corpus_sentences()[150:152])
    codes = codec.encode(to_24k(speak(text).audio, 22050))
    distinct = [len(torch.unique(c)) for c in codes]
    assert codes.shape[1] > 250 and min(distinct) >= 40, distinct

@pytest.mark.parametrize('text,msg', [('', 'Empty text'), ('  \n', 'Empty text'), ('123 ...', None),
                                      ('12 + 3 = 15', "Unsupported character(s) '+', '='"),
                                      ('こんにちは', "Unsupported character(s) 'こ'"), ('?!', 'has no Polish letters')])
def test_bad_text(text, msg):
    if msg is None:
        assert normalise(text).startswith('sto dwadzieścia trzy')
        return
    with pytest.raises(ValueError, match=re.escape(msg)): speak(text)

REPRO = r'''
import hashlib, sys
from mambatts_nb.data import corpus_sentences, default_codec, synth_utterance
from mambatts_nb.text import speak
s = corpus_sentences()
def sha(*xs):
    return hashlib.sha1(b''.join(x.numpy().tobytes() if hasattr(x, 'numpy') else x.tobytes() for x in xs)).hexdigest()
def audio(i, voice, rate):
    sp = speak(s[i], voice, rate)
    return sha(sp.audio, sp.starts)
def tokens(i):
    u = synth_utterance(s[i], default_codec())
    return sha(u.codes, u.durations)
jobs = {'a0': lambda: audio(0, 'pl', None), 'a1f2': lambda: audio(1, 'pl+f2', 150), 't0': lambda: tokens(0),
        'm1': lambda: audio(7, 'pl+m1', 220)}
order = sys.argv[1].split(',')
print({k: jobs[k]() for k in order})
'''

@pytest.mark.slow
def test_audio_and_tokens_are_the_same_bytes_in_any_process_and_order(tmp_path):
    """Same text + voice + rate → bit-identical audio, phoneme starts and tokens: two fresh processes, each with an
    empty cache, speaking in different orders and after other voices (espeak-ng keeps state between utterances in one
    process)."""
    import ast, os, subprocess, sys
    def run(order, cache):
        env = {**os.environ, 'MAMBATTS_CACHE': str(tmp_path/cache)}
        p = subprocess.run([sys.executable, '-c', REPRO, order], capture_output=True, text=True, env=env, check=True)
        return ast.literal_eval(p.stdout.strip().splitlines()[-1])
    a, b = run('a0,a1f2,t0,m1', 'a'), run('m1,a1f2,t0,a0,a0', 'b')
    assert a == b
    assert len(set(a.values())) == 4
