"""``molvae optimize --ask N`` and ``--tell DIR SCORES``: batches scored outside molvae (a lab, a queue).

The run directory keeps ``asktell.json`` (objective, study, storage when it is the default SQLite file),
``ask_NNN.csv`` (each batch asked), ``outstanding.csv`` (every molecule asked and not yet told, rewritten
after each ask and tell) and ``tell_rejects.csv`` (rows of a scores file that could not be used, with
the reason). A blank score means "not measured yet": the molecule stays outstanding; the word
``failed`` records a failed measurement (charged, no score).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from molvae.errors import ConfigError, DataError

__all__ = ["ask", "tell"]

_STATE = "asktell.json"


def _study(out: Path, model: Any, kwargs: dict, storage: str | None, objective: str | None) -> Any:
    """Open (or create) the study of ``out``, remembering what ``--tell`` needs in asktell.json."""
    from molvae.optimize.asktell import DEFAULT_LAB_OBJECTIVE, AskTellStudy
    from molvae.optimize.storage import redact

    state_file = out / _STATE
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    objective = objective or state.get("objective") or DEFAULT_LAB_OBJECTIVE
    if state and objective != state["objective"]:
        raise ConfigError(f"{out} is an ask/tell study of {state['objective']}, not {objective}")
    study_name = kwargs.get("study_name") or state.get("study") or "molvae"
    storage = storage or state.get("storage")
    budget = kwargs.get("budget") or (None if state else 1000)  # a new study gets optimize's default budget
    study = AskTellStudy(model, budget, objective=objective, out=out, storage=storage,
                         study_name=study_name, seeds=kwargs.get("seeds"), constraints=kwargs.get("constraints", ()),
                         seed=kwargs.get("seed") or 0, bound=kwargs.get("bound") or 3.0)
    saved_url = storage if storage is not None and redact(storage) == storage else None  # never write a password
    state_file.write_text(json.dumps({"objective": objective, "study": study_name, "storage": saved_url}, indent=1))
    return study


def _write_outstanding(study: Any, out: Path) -> int:
    import pandas as pd

    pending = study.outstanding()
    pd.DataFrame({"smiles": pending}).to_csv(out / "outstanding.csv", index=False)
    return len(pending)


def ask(args: argparse.Namespace, kwargs: dict) -> int:
    """Write the next batch of proposals; nothing is charged until their scores are told."""
    import pandas as pd

    if args.ask < 1:
        raise ConfigError(f"--ask must be a positive number of molecules, got {args.ask}")
    for key, what in (("model", "MODEL (a model directory or a shipped model's name)"), ("out", "--out DIR")):
        if kwargs.get(key) is None:
            raise ConfigError(f"missing {what}")
    objective = kwargs.get("objective")
    if objective is not None and (not isinstance(objective, str) or not objective.lower().startswith("lab:")):
        raise ConfigError(f"--ask needs a measured objective, lab:NAME (e.g. lab:pIC50), got {objective!r}")
    if objective is not None:
        from molvae.objectives import get_objective

        get_objective(objective)  # a bad name fails before the model loads
    from molvae.cli._io import load_model

    out = Path(kwargs["out"])
    study = _study(out, load_model(kwargs["model"], device=args.device), kwargs, kwargs.get("storage"), objective)
    try:
        batch = study.ask(args.ask)
        number = len(list(out.glob("ask_*.csv"))) + 1
        path = out / f"ask_{number:03d}.csv"
        pd.DataFrame({"smiles": batch}).to_csv(path, index=False)
        waiting = _write_outstanding(study, out)
        print(f"asked {len(batch)} molecules: {path}; {waiting} await scores, {study.remaining} calls left to ask. "
              f"Score them, then: molvae optimize --tell {out} SCORES.csv (columns smiles,score)", file=sys.stderr)
        for smi in batch:
            print(smi)
    finally:
        study.close()
    return 0


def _read_scores(path: Path, name: str) -> tuple[list[str], list[Any], list[dict]]:
    """SMILES and scores of a scores file (blank scores skipped), and its rejected rows with reasons."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"scores file {str(path)!r} not found" if not path.exists() else f"{path}: not a file")
    try:
        table = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read it as CSV: {str(exc).splitlines()[0]}") from None
    columns = {c.strip().lower(): c for c in table.columns}
    smiles_col = columns.get("smiles")
    score_col = columns.get("score") or columns.get(name.lower())
    if smiles_col is None or score_col is None:
        raise DataError(f"{path}: needs a 'smiles' column and a 'score' (or {name!r}) column; it has "
                        f"{', '.join(map(str, table.columns))}")
    smiles, scores, rejects = [], [], []
    for i, (smi, value) in enumerate(zip(table[smiles_col], table[score_col]), start=2):
        reason = _row_problem(smi, value)
        if reason:
            rejects.append({"line": i, "smiles": smi, "score": value, "reason": reason})
        elif value.strip():
            smiles.append(smi.strip())
            scores.append(None if value.strip().lower() == "failed" else float(value))
    return smiles, scores, rejects


def _row_problem(smiles: str, value: str) -> str | None:
    from molvae.chem import parse_smiles

    mol, reason = parse_smiles(smiles.strip()) if smiles.strip() else (None, "empty SMILES")
    if mol is None:
        return f"invalid SMILES: {reason}"
    text = value.strip()
    if not text or text.lower() == "failed":
        return None
    try:
        number = float(text)
    except ValueError:
        return f"score {text!r} is not a number (leave it blank if not measured, or write failed)"
    return None if number == number and abs(number) != float("inf") else f"score {text!r} is not a finite number"


def tell(args: argparse.Namespace) -> int:
    """Record the scores of a file in the study of DIR; rows that cannot be used go to tell_rejects.csv."""
    import pandas as pd

    out, path = Path(args.tell[0]), Path(args.tell[1])
    if not (out / _STATE).is_file():
        raise ConfigError(f"{out} holds no ask/tell study (no {_STATE}): ask first, molvae optimize MODEL --ask N "
                          f"--out {out}")
    state = json.loads((out / _STATE).read_text())
    if state.get("storage") is None and args.storage is None and not (out / "study.db").is_file():
        raise ConfigError(f"the study of {out} lives in a database whose URL was not saved: give --storage URL")
    smiles, scores, rejects = _read_scores(path, state["objective"].split(":", 1)[1])
    if rejects:
        pd.DataFrame(rejects).to_csv(out / "tell_rejects.csv", index=False)
    study = _study(out, None, {"study_name": args.study}, args.storage, None)
    try:
        counts = study.tell(smiles, scores)
        waiting = _write_outstanding(study, out)
        rejected = f"; {len(rejects)} rows rejected (see {out / 'tell_rejects.csv'})" if rejects else ""
        print(f"told {len(smiles)} scores: {counts['charged']} charged, {counts['already']} scored before (not "
              f"charged again){rejected}; {waiting} await scores, {study.remaining} calls left to ask",
              file=sys.stderr)
        study.result().save(out)
    finally:
        study.close()
    return 0
