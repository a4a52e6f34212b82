"""Every compiled part the workbench needs loads and runs. A broken install (torchaudio 2.11.1 beside torch 2.11.0 once
died in the main job's third cell with `undefined symbol` in libtorchaudio.so) fails here with one line naming the
package, its version and torch's. Each part runs in a fresh interpreter: a crash in a native library fails its test
only, and this file needs nothing from conftest."""
import importlib.metadata as md, re, subprocess, sys
import pytest

PARTS = {   # distribution: code that loads and exercises its compiled part
    'torch': "import torch\nassert (torch.ones(2, 3) @ torch.ones(3, 2)).sum() == 12",
    'torchaudio': "import torch, torchaudio\n"
                  "torchaudio.transforms.MelSpectrogram(24000, n_fft=1024)(torch.zeros(2400))\n"
                  "assert torchaudio.functional.resample(torch.zeros(2205), 22050, 24000).shape == (2400,)",
    'encodec': "import encodec\n"
               "m = encodec.EncodecModel.encodec_model_24khz(pretrained=False)\n"
               "assert m.sample_rate == 24000",
    'numba': "import numba, numpy as np\n@numba.njit(cache=False)\ndef f(x): return x.sum()\nassert f(np.ones(3)) == 3",
    'espeakng-loader': "import ctypes, espeakng_loader\n"
                       "lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())\n"
                       "assert lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0x8000) == 22050",
    'soundfile': "import soundfile\nassert soundfile.__libsndfile_version__",
    'safetensors': "import torch, safetensors.torch as st\n"
                   "assert st.load(st.save({'a': torch.ones(2)}))['a'].sum() == 2",
}
pytestmark = pytest.mark.slow                   # each part in a fresh interpreter

def version(dist: str) -> str:
    try: return md.version(dist)
    except md.PackageNotFoundError: return 'not installed'

@pytest.mark.parametrize('dist', PARTS)
def test_compiled_part_loads(dist):
    p = subprocess.run([sys.executable, '-c', PARTS[dist]], capture_output=True, text=True, timeout=300)
    if p.returncode:
        errors = [l for l in p.stderr.splitlines() if re.match(r'[\w.]*(Error|Exception): ', l)]
        errors = errors or [f'exit status {p.returncode}']
        why = errors[-1] + (f' (from {errors[0]})' if len(errors) > 1 else '')     # the chained cause says the most
        pytest.fail(f"{dist} {version(dist)} (torch {version('torch')}, Python {sys.version.split()[0]}) "
                    f"does not load: {why}", pytrace=False)

def test_a_broken_part_is_named(monkeypatch):
    "The failure names the package and versions in one line (an import that cannot work stands in for a broken one)."
    monkeypatch.setitem(PARTS, 'torchaudio', "raise OSError('libtorchaudio.so: undefined symbol: x')")
    with pytest.raises(pytest.fail.Exception) as e: test_compiled_part_loads('torchaudio')
    assert str(e.value) == (f"torchaudio {version('torchaudio')} (torch {version('torch')}, "
                            f"Python {sys.version.split()[0]}) does not load: OSError: libtorchaudio.so: undefined "
                            "symbol: x")
