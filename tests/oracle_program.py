"""A stand-in for an external scoring program (``exec:`` objectives): reads SMILES on stdin, one per line.

    python oracle_program.py length      # prints len(SMILES) / 10 per line (nan for a SMILES with 'Cl')
    python oracle_program.py crash       # exits with status 3 after a message on stderr
    python oracle_program.py hang        # never answers
    python oracle_program.py miscount    # prints one line too few
    python oracle_program.py text        # prints a word instead of a number
    python oracle_program.py log FILE    # as length, and appends each batch's size to FILE
    python oracle_program.py flaky FILE  # crashes while FILE exists, else as length
"""

import sys
import time

mode = sys.argv[1]
smiles = [line.strip() for line in sys.stdin if line.strip()]
import os

if mode == "crash" or (mode == "flaky" and os.path.exists(sys.argv[2])):
    print("docking engine: licence not found", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    time.sleep(600)
scores = ["nan" if "Cl" in s else f"{len(s) / 10:.3f}" for s in smiles]
if mode == "miscount":
    scores = scores[:-1]
if mode == "text":
    scores[0] = "error"
if mode == "log":
    with open(sys.argv[2], "a") as fh:
        fh.write(f"{len(smiles)}\n")
print("\n".join(scores))
