"""What the test files share: the codec, a few corpus utterances, the phoneme vocabulary, selective-scan inputs, a
papermill run of train.ipynb; the order the tests run in, and how pytest-xdist hands them to its workers."""
from pathlib import Path
import pytest
# the package is imported inside the fixtures: a broken install then fails tests/test_install.py with one line naming
# the broken package, instead of this file failing to load with a traceback for every test

ROOT = Path(__file__).resolve().parents[1]
# files whose tests share a run that a module fixture trains: pytest-xdist gives each of them to one worker, so the
# run is trained once, and no worker waits for another's
ONE_WORKER = ('test_browser.py', 'test_speakers.py')

@pytest.hookimpl(optionalhook=True)           # pytest-xdist's hook: not called without it
def pytest_xdist_make_scheduler(config, log):
    "`-n 2`'s default distribution ('load': single tests to whichever worker is free), the `ONE_WORKER` files whole."
    if config.getoption('dist') != 'load': return None
    from xdist.scheduler import LoadScopeScheduling
    class LoadWholeFiles(LoadScopeScheduling):    # a unit of work: one test, or one of those files
        def _split_scope(self, nodeid):
            path = nodeid.split('::')[0]
            return path if Path(path).name in ONE_WORKER else nodeid
    return LoadWholeFiles(config, log)

def pytest_collection_modifyitems(config, items):
    "Slow tests first: the workers then end together on short tests, not one alone on a long one."
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)

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
def scan_inputs():
    """`scan_inputs(b, d, n, l, dt_scale, seed=0)`: seeded fp32 arguments of `selective_scan` on the CPU, a carried
    state `h0` among them; item 0 has a padded tail (its last third of `u` is 0)."""
    import torch
    def inputs(b, d, n, l, dt_scale, seed=0):
        g = torch.Generator().manual_seed(seed)
        def r(*shape): return torch.randn(*shape, generator=g)
        mask = torch.ones(b, l)
        mask[0, l * 2 // 3:] = 0
        return dict(u=r(b, d, l) * mask[:, None], delta=r(b, d, l) * dt_scale,
                    A=-torch.rand(d, n, generator=g) * 16 - 0.1, B=r(b, n, l), C=r(b, n, l), D=r(d), z=r(b, d, l),
                    delta_bias=r(d), delta_softplus=True, h0=r(b, d, n))
    return inputs

@pytest.fixture(scope='session')
def train_notebook():
    "`train_notebook(out_dir, **params)`: train.ipynb run by papermill with `params`; its runs go to `out_dir`/train/."
    import papermill as pm                              # only here: the GPU machine has no papermill
    def run(out_dir, **params):
        return pm.execute_notebook(ROOT/'nbs'/'train.ipynb', Path(out_dir)/'executed.ipynb', kernel_name='python3',
                                   parameters=dict(out_dir=str(out_dir), **params), progress_bar=False,
                                   cwd=str(ROOT/'nbs'))
    return run
