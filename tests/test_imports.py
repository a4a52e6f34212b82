"""The package's import graph: every module imports in a fresh interpreter, each module's imports sit at its top (but
for optional packages), and the modules' imports of each other form no cycle."""
import ast, subprocess, sys
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parents[1]/'mambatts_nb'
MODULES = sorted(p.stem for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx'))
OPTIONAL = {'triton', '.triton_scan', 'mamba_ssm', 'papermill', 'submitit', 'tensorboard', 'torch.utils.tensorboard',
            'mambapy'}

def imports(module: str):
    "(package module imported at top level, [(line, name) of imports inside functions or classes])."
    tree = ast.parse((PKG/f'{module}.py').read_text())
    top = {n.module.split('.')[-1] for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
    nested = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for n in ast.walk(node):
                if isinstance(n, ast.Import): nested += [(n.lineno, a.name) for a in n.names]
                if isinstance(n, ast.ImportFrom): nested.append((n.lineno, ('.' * n.level) + (n.module or '')))
    return top, nested

@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter():
    code = '; '.join(f'import mambatts_nb.{m}' for m in MODULES)
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]

@pytest.mark.parametrize('module', MODULES)
def test_imports_sit_at_the_top_of_the_module(module):
    nested = [(line, name) for line, name in set(imports(module)[1])
              if not any(name == o or name.startswith(o + '.') for o in OPTIONAL)]
    assert not nested, f'{module}.py imports inside functions (move them to the top): {sorted(nested)}'

def test_no_import_cycle():
    graph = {m: imports(m)[0] & set(MODULES) for m in MODULES}
    done, path = set(), []
    def visit(m):
        if m in path: raise AssertionError(f"import cycle: {' -> '.join(path[path.index(m):] + [m])}")
        if m in done: return
        path.append(m)
        for n in sorted(graph[m]): visit(n)
        path.pop()
        done.add(m)
    for m in MODULES: visit(m)
    assert graph['generate'] and 'train' not in graph['generate'] and 'train' not in graph['evaluate']
