"""The dashboard as its users see it: listen.ipynb opened in JupyterLab, all cells run from the Run menu, in headless
Chromium. The plotly curves, the audio players and no error output must appear; a screenshot lands in outputs/. And
listen.ipynb run by papermill, its widgets saved with their audio."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request
from contextlib import contextmanager
from pathlib import Path
import papermill as pm, pytest
from playwright.sync_api import sync_playwright, TimeoutError as PlaywrightTimeout
from mambatts_nb.codec import codec_warning

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium')
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']
SHOT = ROOT/'outputs'/'dashboard-screenshot.png'
# JupyterLab user settings for the test: no news or update checks (nothing leaves 127.0.0.1), and every cell kept in
# the page (no windowing) so the whole dashboard is in the DOM and on the screenshot.
SETTINGS = {'@jupyterlab/apputils-extension/notification': dict(fetchNews='false', checkForUpdates=False),
            '@jupyterlab/notebook-extension/tracker': dict(windowingMode='none')}

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _wait_http(url, timeout=90):
    "Poll `url` until it answers 200, or fail with the time waited."
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise TimeoutError(f'{url} did not answer within {timeout} s')

@contextmanager
def jupyterlab(root: Path, home: Path, env: dict):
    "A JupyterLab server on a free 127.0.0.1 port serving `root`, no token or password; yields its base URL."
    for name, values in SETTINGS.items():
        f = home/'settings'/f'{name}.jupyterlab-settings'
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    port = _free_port()
    env = dict(os.environ, **env, JUPYTERLAB_SETTINGS_DIR=str(home/'settings'),
               JUPYTERLAB_WORKSPACES_DIR=str(home/'workspaces'), JUPYTER_RUNTIME_DIR=str(home/'runtime'))
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--allow-root', '--ServerApp.ip=127.0.0.1',
           f'--ServerApp.port={port}', '--ServerApp.port_retries=0', '--IdentityProvider.token=',
           '--ServerApp.password=', f'--ServerApp.root_dir={root}', '--LabApp.extension_manager=readonly']
    with open(home/'server.log', 'w') as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
        try:
            url = f'http://127.0.0.1:{port}'
            _wait_http(f'{url}/lab')
            yield url
        finally:
            server.terminate()
            try: server.wait(timeout=30)
            except subprocess.TimeoutExpired: server.kill()

def wait_kernel_settled(url, timeout=120):
    """Wait until the server holds one session whose kernel stays the same and idle for 3 s (JupyterLab may replace
    its first)."""
    deadline, seen = time.time() + timeout, []
    while time.time() < deadline:
        with urllib.request.urlopen(f'{url}/api/sessions', timeout=5) as r:
            sessions = json.load(r)
        seen.append([(s['kernel']['id'], s['kernel']['execution_state']) for s in sessions])
        if len(seen) >= 4 and all(len(k) == 1 and k == seen[-1] and k[0][1] == 'idle' for k in seen[-4:]):
            return
        time.sleep(1)
    raise TimeoutError(f'no settled idle kernel within {timeout} s: {seen[-3:]}')

def run_all_cells(page, tries=3):
    "JupyterLab's own Run ▸ Run All Cells menu command, repeated while no cell finishes (a kernel that went away)."
    for _ in range(tries):
        page.locator('.lm-MenuBar-item', has_text='Run').first.click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        try:                                                # the parameters cell is instant: its count must appear
            page.wait_for_function(
                """() => /\\[[0-9]+\\]/.test(document.querySelector('.jp-CodeCell .jp-InputPrompt').innerText)""",
                timeout=60_000)
            return
        except PlaywrightTimeout: pass
    raise AssertionError(f'Run All Cells finished no cell in {tries} tries')

def dashboard_state(page) -> dict:
    """What the page shows: plotly figures with their trace counts, audio sources, mel pictures, codec warnings, error
    outputs."""
    return page.evaluate("""() => ({
        plots: [...document.querySelectorAll('.js-plotly-plot')].map(p => (p.data || []).length),
        audio: [...document.querySelectorAll('audio')].map(a => a.currentSrc || a.src || ''),
        errors: [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]')]
            .map(e => e.innerText),
        stderr: [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
            .map(e => e.innerText),
        warnings: [...document.querySelectorAll('.mambatts-codec-warning')].map(e => e.innerText),
        images: [...document.querySelectorAll('.widget-image')].map(i => i.naturalWidth),
    })""")

@pytest.fixture(scope='module')
def short_run_root(tmp_path_factory, train_notebook):
    "A 3-step run of train.ipynb with its samples, in <root>/train/: what both tests open (they only read it)."
    root = tmp_path_factory.mktemp('short')
    train_notebook(root, steps=3)
    return root

@pytest.mark.slow
def test_listen_notebook_renders_dashboard_with_audio(tmp_path, short_run_root):
    out = tmp_path/'listen.ipynb'
    pm.execute_notebook(ROOT/'nbs'/'listen.ipynb', out, parameters=dict(root=str(short_run_root)),
                        kernel_name='python3', progress_bar=False, cwd=str(ROOT/'nbs'))
    nb = json.loads(out.read_text())
    views = [o for c in nb['cells'] for o in c.get('outputs', [])
             if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    state = nb['metadata']['widgets']['application/vnd.jupyter.widget-state+json']['state']
    audio = [w for w in state.values() if w['model_name'] == 'AudioModel']
    assert views and len(audio) == 5 and all(w['state'].get('format') == 'wav' for w in audio)

# the dashboard has drawn its players and curves, or a cell has failed (JupyterLab 4 shows tracebacks as stderr)
DONE = """() => (document.querySelectorAll('audio').length >= 5 && document.querySelector('.js-plotly-plot'))
             || [...document.querySelectorAll('[data-mime-type$="error"], [data-mime-type$="stderr"]')]
                    .some(e => /Traceback|Error/.test(e.innerText))"""

@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None,
                    reason="Debian's chromium is not on PATH (apt-get install chromium; .ci/run does)")
def test_dashboard_runs_in_jupyterlab(tmp_path, short_run_root):
    runs, lab = short_run_root, tmp_path/'lab'
    lab.mkdir()
    shutil.copy(ROOT/'nbs'/'listen.ipynb', lab/'listen.ipynb')      # JupyterLab saves what it runs: never into nbs/
    with jupyterlab(lab, tmp_path, dict(MAMBATTS_OUTPUTS=str(runs))) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={'width': 1500, 'height': 2000})
        try:
            page.goto(f'{url}/lab/tree/listen.ipynb', timeout=120_000)
            page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=120_000)
            wait_kernel_settled(url)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
            run_all_cells(page)
            page.wait_for_function(DONE, timeout=240_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
        finally:                                            # the screenshot and the state tell what went wrong, too
            page.keyboard.press('Control+b')                # hide the file browser for the screenshot
            page.wait_for_timeout(1000)
            SHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOT))
            state = dashboard_state(page)
            browser.close()
    assert state['plots'] and all(n > 0 for n in state['plots']), state
    assert len(state['audio']) >= 5 and all(state['audio']), state
    errors = state['errors'] + [t for t in state['stderr'] if 'Traceback' in t or 'Error' in t]
    assert not errors, errors
    assert len(state['images']) >= 5 and all(w > 0 for w in state['images']), state
    warning = codec_warning(json.loads(next(runs.rglob('config.json')).read_text()).get('codec'))
    assert state['warnings'] == ([f'⚠ {warning}'] if warning else []), state['warnings']
    assert SHOT.stat().st_size > 20_000
