from pathlib import Path
import pytest
# the package is imported inside the fixtures: a broken install then fails tests/test_install.py with one line naming
# the broken package, instead of this file failing to load with a traceback for every test

@pytest.fixture(scope='session')
def codec():
    from mambatts_nb.data import default_codec
    return default_codec()

@pytest.fixture(scope='session')
def utts(codec):
    from mambatts_nb.data import load_corpus
    return load_corpus(range(6), codec, progress=False)

@pytest.fixture(scope='session')
def vocab():
    from mambatts_nb.data import corpus_vocab
    return corpus_vocab()

@pytest.fixture(scope='session')
def short_run_root(tmp_path_factory):
    "A 3-step run of train.ipynb with its samples, in <root>/train/: what the dashboard tests open (they only read it)."
    root, nbs = tmp_path_factory.mktemp('short'), Path(__file__).resolve().parents[1]/'nbs'
    import papermill as pm                    # only this fixture needs it (the GPU machine has no papermill)
    pm.execute_notebook(nbs/'train.ipynb', root/'executed.ipynb', parameters=dict(out_dir=str(root), steps=3), kernel_name='python3',
                        progress_bar=False, cwd=str(nbs))
    return root
