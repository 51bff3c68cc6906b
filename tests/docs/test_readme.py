"""The README's python blocks run as written (each in a fresh namespace)."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (blocks that save weights or draw graphs write files)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    block = BLOCKS[index]
    if index == 0:
        assert "6." in out
    if "accuracy" in block:
        accuracy = float(out.split("accuracy")[1])
        assert accuracy > 0.9
    if "rewritten=False" in block:  # the graph as built, then as rewritten, then finite values
        before, after = out.split("Elemwise{softplus}")
        assert "Elemwise{log}" in before and "Elemwise{exp}" in before
        assert "log" not in after and "inf" not in after and "1.00000000e+03" in after
    if "class Double" in block:
        assert "[2. 2. 2.]" in out
