"The block benchmark's baselines are fair (no dropout) and its rows are complete and self-consistent; never times."
import pytest, torch
from mambatts_nb.bench import (PEER_NAMES, RATIOS, bench_blocks, block_header, block_labels, block_peers, main,
                               markdown, torch_layer)

@pytest.fixture(scope='module')
def rows(): return bench_blocks(d_models=(32,), lengths=(64,), batch=1, repeat=1)

def test_torch_layer_has_no_dropout_anywhere():
    layer = torch_layer(32)
    assert layer.dropout.p == 0 and layer.dropout1.p == 0 and layer.dropout2.p == 0
    assert layer.self_attn.dropout == 0
    assert layer.self_attn.batch_first and layer.linear1.out_features == 4 * 32

def test_no_peer_has_active_dropout():
    for name, m in block_peers(32).items():
        ps = [d.p for d in m.modules() if isinstance(d, torch.nn.Dropout)]
        assert all(p == 0 for p in ps), (name, ps)
        assert getattr(getattr(m, 'self_attn', None), 'dropout', 0) == 0, name

def test_rows_have_every_column_positive_times_and_same_row_ratios(rows):
    expected = {'d_model', 'length', 'batch', 'backend', *RATIOS,
                *(f'{k}_{u}' for k in PEER_NAMES for u in ('ms', 'mb'))}
    assert len(rows) == 1 and set(rows[0]) == expected
    r = rows[0]
    assert (r['d_model'], r['length'], r['batch']) == (32, 64, 1)
    assert all(r[f'{k}_ms'] > 0 for k in PEER_NAMES)
    for k, (a, b) in RATIOS.items():
        assert r[k] == r[f'{a}_ms'] / r[f'{b}_ms'], k
    assert r['ours/torch_layer'] > 0 and r['ours/our_transformer'] > 0 and r['mambapy/ours'] > 0

def test_every_column_is_labelled(rows):
    labels = block_labels('cpu')
    assert set(rows[0]) - {'d_model', 'batch'} <= set(labels)
    assert all('RSS' in labels[f'{k}_mb'] for k in PEER_NAMES)       # the memory columns say what they measure
    header = markdown(rows, labels).splitlines()[0]
    assert 'torch TransformerEncoderLayer ms' in header and 'ours / our TransformerBlock' in header

def test_header_names_each_peer_configuration():
    h = block_header((32,), batch=1, repeat=1)
    assert 'dropout=0.0, batch_first=True' in h and 'no mask' in h
    assert 'MambaMixer' in h and 'TransformerBlock' in h and 'pscan' in h and 'RSS' in h

def test_cli_prints_header_and_labelled_table(capsys):
    main(what='blocks', d_models='32', lengths='16', batch=1, repeat=1, device='cpu')
    out = capsys.readouterr().out
    assert 'TransformerEncoderLayer(d, 4, 4d, dropout=0.0, batch_first=True)' in out and 'pscan' in out
    assert '| ours / torch layer | ours / our TransformerBlock | mambapy / ours |' in out

def test_cli_lengths_prints_one_row_per_length_and_the_crossover(capsys):
    main(what='lengths', presets='tiny,tiny@transformer', frames='32,64', repeat=1, device='cpu')
    out = capsys.readouterr().out
    assert '| frames | tiny ms | tiny MB | tiny@transformer ms | tiny@transformer MB | tiny/tiny@transformer |' in out
    assert [line.split(' | ')[0] for line in out.splitlines() if line.startswith('| ') and line[2].isdigit()] == \
        ['| 32', '| 64']
    assert 'Crossover (shortest length from which each stays faster than tiny@transformer): {' in out
    rows = [line.split(' | ') for line in out.splitlines() if line.startswith('| 32 |') or line.startswith('| 64 |')]
    assert all(float(r[1].replace(',', '')) > 0 and float(r[3].replace(',', '')) > 0 for r in rows)   # both timed

def test_cli_throughput_finds_the_largest_batch_it_was_allowed(capsys):
    main(what='throughput', presets='tiny', seconds=1, max_batch=2, repeat=1, device='cpu')
    out = capsys.readouterr().out
    assert '## Frames per second at batch 1 and at the largest batch that fits (≤ 2)' in out
    assert '| preset | params | max_batch | frames_per_s_b1 | frames_per_s_max | step_ms_max |' in out
    assert 'gpu_busy' not in out              # CUDA's busy share: no value on a CPU, so markdown leaves the column out
    assert [line.split(' | ')[2] for line in out.splitlines() if line.startswith('| tiny |')] == ['2']
