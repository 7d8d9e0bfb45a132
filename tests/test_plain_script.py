"""molvae called the way most chemists call it: a plain ``python script.py`` without a main guard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "model_8b428cc"


def test_unguarded_script_samples_and_decodes_5000_molecules_in_worker_pools(tmp_path):
    """From 4,096 molecules on, post-processing runs in a process pool: its workers must not import the
    script again (they did under forkserver, and the pool broke)."""
    script = tmp_path / "script.py"
    script.write_text(
        "from molvae import MolVAE\n"
        f"m = MolVAE.load({str(FIXTURE)!r}, device='cpu')\n"
        "df = m.sample(5000, seed=0, progress=False, keep_repaired=True)\n"
        "z = m.prior_sample(5000, seed=1)\n"
        "decoded = m.decode(z)\n"
        "print(len(df), len(decoded), sum(s is not None for s in decoded))\n"
        "open('ran.txt', 'a').write('x')\n"
    )
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n_sampled, n_decoded, n_valid = map(int, proc.stdout.split())
    assert (n_sampled, n_decoded) == (5000, 5000) and n_valid > 4000
    assert (tmp_path / "ran.txt").read_text() == "x"  # the script body ran once, not again in a worker
