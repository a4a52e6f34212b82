import pytest, torch
from mambatts_nb.data import default_codec, load_corpus, corpus_vocab

@pytest.fixture(scope='session')
def codec(): return default_codec()

@pytest.fixture(scope='session')
def utts(codec): return load_corpus(range(6), codec, progress=False)

@pytest.fixture(scope='session')
def vocab(): return corpus_vocab()
