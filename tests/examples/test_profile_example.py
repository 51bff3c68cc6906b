"""The profile example prints the table of the MLP's training step (small size, on numpy: the
table's structure is the same with C kernels, which would only cost a compile here)."""
import io
import re

from theon import config
from theon.examples import profile_mlp

STEPS = 12


def test_profile_example_prints_the_training_steps_table(monkeypatch):
    if config.device == "cpu":  # (the device stand-in builds its kernels with the compiler)
        monkeypatch.setattr(config, "cxx", "")
    out = io.StringIO()
    stats = profile_mlp.main(steps=STEPS, n_hidden=16, file=out)
    text = out.getvalue()
    assert text.startswith("Function profiling: mlp training step")
    assert f"{STEPS} call(s)" in text
    for phase in ("rewrite: canonicalize", "rewrite: stabilize", "rewrite: fusion",
                  "code generation"):
        assert phase in text
    assert stats.fct_callcount == STEPS
    assert all(n == STEPS for n in stats.apply_callcount.values())
    rows = stats.node_rows()
    # the network's nodes name the lines of mlp.forward that built them, the updates this file's
    assert any(re.search(r"mlp\.py:\d+ \(in forward\): p = T\.nnet\.softmax", r["line"])
               for r in rows)
    assert any("profile_mlp.py" in r["line"] and "new_velocity" in r["line"] for r in rows)
    classes = {r["op_class"] for r in stats.op_class_rows()}
    assert {"Softmax", "Gemm"} <= classes
    node_lines = text.split("Nodes, by time:")[1].strip().splitlines()[1:]
    assert len(node_lines) == 12 + 1 and node_lines[-1].strip().startswith("...")
