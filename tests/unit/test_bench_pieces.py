"""The benchmarks that cut pieces out of the decide script name them by its text: they must still find it."""
import sys
from pathlib import Path

import pytest

from bandit_push import scripts

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # bench/ is not a package
import decide_cpu  # noqa: E402
import script_cost  # noqa: E402


@pytest.mark.parametrize("label,old", [(label, old) for label, cuts in script_cost.PIECES for old, _ in cuts]
                         + [(label, old) for label, old, _ in decide_cpu.PIECES])
def test_each_cut_piece_is_in_the_decide_script(label, old):
    assert scripts.DECIDE.count(old) == 1, f"{label}: update the benchmark's PIECES to the script"
