"The dashboard served by Voila and rendered in headless Chromium: a plot and playable audio appear."
import os, shutil, socket, subprocess, sys, time
from pathlib import Path
import papermill as pm, pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium')
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_dashboard_renders_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright
    pm.execute_notebook(ROOT/'nbs'/'train.ipynb', tmp_path/'train.ipynb', parameters=dict(out_dir=str(tmp_path), steps=3),
                        kernel_name='python3', progress_bar=False, cwd=str(ROOT/'nbs'))
    port = _free_port()
    server = subprocess.Popen([sys.executable, '-m', 'voila', str(ROOT/'nbs'/'listen.ipynb'), '--no-browser', f'--port={port}',
                               '--Voila.ip=127.0.0.1'], env=dict(os.environ, MAMBATTS_OUTPUTS=str(tmp_path)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', port)) == 0: break
            time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.goto(f'http://127.0.0.1:{port}/', timeout=120_000)
            page.wait_for_selector('audio', timeout=180_000)
            page.wait_for_selector('.js-plotly-plot', timeout=60_000)
            srcs = page.eval_on_selector_all('audio', 'els => els.map(e => e.currentSrc || e.src || "")')
            shot = ROOT/'outputs'/'dashboard-screenshot.png'
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert len(srcs) >= 5 and all(s for s in srcs), srcs
        assert shot.stat().st_size > 10_000
    finally:
        server.terminate(); server.wait(timeout=30)
