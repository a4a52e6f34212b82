"""`normalise` on Polish as real transcripts write it: `normalise_cases.tsv` (kind, input, expected reading), a table
written for the project. Each case is asserted on its own; a case counts as read correctly only where the whole output
equals the expected reading (an expected 'ValueError: …' is the start of the error `normalise` must raise)."""
import csv
from collections import Counter
from pathlib import Path
import pytest
from mambatts_nb.text import normalise

CASES = Path(__file__).with_name('normalise_cases.tsv')
KNOWN_WRONG = {   # input → why it is still read wrongly; a strict xfail, so a rule that fixes one says so
    'Mieszkam tu od 10 lat.': "the core corpus (sentence 115) reads 'od 10 lat' as 'od dziesięć lat' and must not "
                              "change: 'od' gives the genitive only before a unit or in 'od … do …'",
    'Po 4 latach wrócił.': "the core corpus (sentence 150) reads 'po 4 latach' as 'po cztery latach': no rule for 'po'",
    'Ślady osady sprzed 3000 lat.': "the core corpus (sentence 143) reads 'sprzed 3000 lat' in the nominative",
    'Sklep jest czynny do 22 w każdy dzień.': "the core corpus (sentence 93) reads 'do 22 w' as 'do dwadzieścia dwa': "
                                              "a bare hour is not told from a number",
    'W ogrodzie rosną 2 grusze.': "the core corpus (sentence 82) reads '2 grusze' as 'dwa grusze'",
    'Drużyna wygrała mecz 3 do 1.': "the core corpus (sentence 189) reads '3 do 1' as 'trzy do jeden': a score in "
                                    "words is not told from a range",
    'Pokój dla 1 do 3 osób.': "a preposition's case reaches only the number right after it, and 'osób' does not tell "
                              "that 'jeden' is feminine",
    'Kupiłem 2 gruszki.': "a bare number agrees in gender only with the nouns of FEMININE_NOUNS",
    'Zjadłem 1,5 kg.': "decimals are read 'jeden przecinek pięć', never 'półtora'",
    'Zakres 0,5–1,5 l.': "a range of decimals is not read as one, and decimals never as 'pół', 'półtora'",
    'Spotkanie o 10 w sali 204.': "a bare number after 'o' is not told from an amount ('wzrosła o 10 w ciągu roku')",
    'Mam 3 dzieci.': "no collective numerals ('troje', 'dwoje')",
    'Film oceniam na 10/10.': "a rating a/b is not told from a fraction or 'a przez b'",
    'Paczkę wysłano 5.06.': "a day and month without a year ('5.06.') is not told from a time ('o 8.05')",
}

def read_cases(path: Path = CASES) -> list:
    "(kind, input, expected) rows of the table, its header left out."
    with open(path, encoding='utf-8', newline='') as f:
        rows = list(csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
    assert rows[0] == ['kind', 'input', 'expected'], rows[0]
    return [tuple(r) for r in rows[1:] if r]

def reading(text: str) -> str:
    "What `normalise` makes of `text`, or 'ValueError: <message>'."
    try: return normalise(text)
    except ValueError as e: return f'ValueError: {e}'

def read_correctly(text: str, expected: str) -> bool:
    "Whether the whole reading of `text` is `expected` (or its error starts with an expected 'ValueError: …')."
    got = reading(text)
    return got.startswith(expected) if expected.startswith('ValueError: ') else got == expected

ROWS = read_cases()

@pytest.mark.parametrize('kind,text,expected', [
    pytest.param(kind, text, expected, id=f'{kind}-{i}',
                 marks=[pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[text])] if text in KNOWN_WRONG else [])
    for i, (kind, text, expected) in enumerate(ROWS)])
def test_case(kind, text, expected):
    assert read_correctly(text, expected), (text, reading(text))

def test_share_read_correctly_by_kind(capsys):
    "The table's size and kinds, the share read correctly per kind (printed), and exactly `KNOWN_WRONG` read wrongly."
    total, right = Counter(k for k, _, _ in ROWS), Counter(k for k, t, e in ROWS if read_correctly(t, e))
    with capsys.disabled():
        print(f'\nnormalise_cases.tsv: {sum(right.values())}/{len(ROWS)} read correctly')
        for k in total: print(f'  {k:<13} {right[k]:>3}/{total[k]:<3} {right[k] / total[k]:.0%}')
    assert len(ROWS) >= 200 and len(total) >= 15
    assert len({t for _, t, _ in ROWS}) == len(ROWS), 'an input is in the table twice'
    assert {t for _, t, e in ROWS if not read_correctly(t, e)} == set(KNOWN_WRONG)
