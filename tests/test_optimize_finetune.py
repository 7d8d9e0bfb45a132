"""``reinvent`` (decoder fine-tuning on the oracle's answers) and ``selfies_ga`` on the tiny model.

Each method must beat what it is without its learning step, at a fixed small budget and seed:
``reinvent`` with the agent's update made a no-op samples the frozen decoder (plain prior samples),
``selfies_ga`` and ``graph_ga`` with a population frozen at its first generation stop climbing. The toy objective
(nitrogen and oxygen atoms / 10) is one the tiny model can learn within a few hundred calls.
"""

from __future__ import annotations

import numpy as np
import pytest

from molvae.chem import parse_smiles
from molvae.errors import ConfigError
from molvae.optimize import OptimizationResult, Oracle, optimize
from molvae.optimize import genetic, reinvent


def n_and_o(smiles: str) -> float:
    """The toy objective: nitrogen and oxygen atoms, a tenth each."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    return sum(a.GetSymbol() in ("N", "O") for a in mol.GetAtoms()) / 10.0


def _charged(result: OptimizationResult, budget: int) -> np.ndarray:
    """The charged scores in call order, after checking the log: calls 1..n, n <= budget, no repeat."""
    charged = result.df[result.df["call"].notna()]
    assert charged["call"].tolist() == list(range(1, len(charged) + 1))
    assert len(charged) <= budget
    assert charged["smiles"].is_unique and result.df["smiles"].is_unique
    return charged["score"].to_numpy(dtype=float)


REINVENT_FAST = {"batch_size": 32, "lr": 0.01}  # the tiny model learns in a dozen rounds at this step


def test_reinvent_learns_from_the_oracle_and_beats_plain_prior_samples(tiny_model, monkeypatch):
    budget = 400
    learned = optimize(tiny_model, n_and_o, budget=budget, method="reinvent", seed=0, progress=False,
                       options=REINVENT_FAST)
    trained = _charged(learned, budget)
    assert len(trained) == budget and learned.stats["stopped"] == "budget spent"
    monkeypatch.setattr(reinvent.Agent, "update", lambda self, *args, **kwargs: 0.0)
    frozen = _charged(optimize(tiny_model, n_and_o, budget=budget, method="reinvent", seed=0, progress=False,
                               options=REINVENT_FAST), budget)
    # the agent's later batches beat its first ones and the frozen decoder's (which stays flat)
    assert trained[-100:].mean() > trained[:100].mean() + 0.1, (trained[:100].mean(), trained[-100:].mean())
    assert trained[-100:].mean() > frozen[-100:].mean() + 0.1, (trained[-100:].mean(), frozen[-100:].mean())
    assert trained.max() > frozen.max()


def test_reinvent_with_ga_offspring_best_latents_and_the_diversity_filter(tiny_model):
    budget = 150
    result = optimize(tiny_model, "qed", budget=budget, method="reinvent", seed=1, progress=False,
                      options={"batch_size": 24, "ga_children": 12, "z_source": "mixed", "replay": 20,
                               "diversity_bucket": 2, "diversity_min_score": 0.0, "augment_rounds": 1})
    assert len(_charged(result, budget)) == budget
    assert result.stats["stopped"] == "budget spent"
    assert result.stats["options"]["ga_children"] == 12


def _frozen_population(monkeypatch) -> None:
    """Make ``Oracle.top`` keep answering what it first answered: the GA's parents never improve."""
    real_top, first = Oracle.top, {}

    def top(self, k):
        if (id(self), k) not in first:
            answer = real_top(self, k)
            if not answer:
                return answer
            first[id(self), k] = answer
        return first[id(self), k]

    monkeypatch.setattr(Oracle, "top", top)


def n_and_o_share(smiles: str) -> float:
    """A toy objective that does not grow with size (Graph GA's moves keep children ZINC-sized): the share
    of heavy atoms that are nitrogen or oxygen."""
    from rdkit import Chem

    atoms = Chem.MolFromSmiles(smiles).GetAtoms()
    return sum(a.GetSymbol() in ("N", "O") for a in atoms) / max(1, len(atoms))


@pytest.mark.parametrize("method, objective, margin", [("selfies_ga", n_and_o, 1.0),
                                                       ("graph_ga", n_and_o_share, 0.08)])
def test_the_gas_climb_beat_random_and_need_their_selection(tiny_model, monkeypatch, method, objective, margin):
    budget = 300
    ga = _charged(optimize(tiny_model, objective, budget=budget, method=method, seed=0, progress=False), budget)
    randomly = _charged(optimize(tiny_model, objective, budget=budget, method="random", seed=0, progress=False),
                        budget)
    _frozen_population(monkeypatch)
    frozen = _charged(optimize(tiny_model, objective, budget=budget, method=method, seed=0, progress=False), budget)
    assert len(ga) == budget
    assert ga[-100:].mean() > ga[:100].mean() + margin
    assert ga[-100:].mean() > randomly[-100:].mean() + margin, (ga[-100:].mean(), randomly[-100:].mean())
    assert ga[-100:].mean() > frozen[-100:].mean() + margin, (ga[-100:].mean(), frozen[-100:].mean())


def test_selfies_ga_without_latent_moves_starts_from_seeds(tiny_model):
    result = optimize(tiny_model, "qed", budget=60, method="selfies_ga", seed=2, progress=False,
                      seeds=["CC(=O)Nc1ccc(O)cc1", "c1ccccc1O"], options={"latent_share": 0.0, "children": 20})
    charged = _charged(result, 60)
    assert len(charged) == 60
    assert set(result.df["smiles"].iloc[:2]) == {"CC(=O)Nc1ccc(O)cc1", "Oc1ccccc1"}


@pytest.mark.parametrize("options", [{"latent_share": "auto"}, {"latent_share": 0.3, "graph_share": 0.5}])
def test_selfies_ga_with_graph_moves_or_adaptive_shares_climbs_within_budget(tiny_model, options):
    result = optimize(tiny_model, n_and_o, budget=200, method="selfies_ga", seed=0, progress=False,
                      options={**options, "children": 25})
    charged = _charged(result, 200)
    assert len(charged) == 200 and result.stats["stopped"] == "budget spent"
    assert charged[-50:].mean() > charged[:50].mean()


# --------------------------------------------------------------------------- the parts


def _answers(statuses_scores):
    from molvae.optimize.oracle import Answer

    return [Answer(smiles=f"C{i}", status=st, score=sc) for i, (st, sc) in enumerate(statuses_scores)]


def test_operator_share_follows_the_move_whose_children_enter_the_population():
    share = genetic.OperatorShare()
    assert share.shares == pytest.approx([1 / 3] * 3)
    move = np.repeat([0, 1, 2], 10)  # latent, token, graph
    for _ in range(30):  # only the latent children beat the entry score
        share.update(move, _answers([("new", 1.0)] * 10 + [("new", 0.0)] * 20), threshold=0.5)
    assert share.shares == pytest.approx([0.8, 0.1, 0.1], abs=0.01)  # the others keep their floor
    for _ in range(150):  # the tables turn: latent children fail (charged, no win) or repeat (free, not counted)
        share.update(move, _answers([("failed", None)] * 5 + [("cached", 1.0)] * 5 + [("new", 0.0)] * 10
                                    + [("new", 1.0)] * 10), threshold=0.5)
    assert share.shares == pytest.approx([0.1, 0.1, 0.8], abs=0.02)
    assert share.shares.sum() == pytest.approx(1.0)


def test_selfies_moves_stay_valid_molecules_in_the_vocabulary(tiny_model):
    from molvae.generate import postprocess

    rng = np.random.default_rng(0)
    alphabet = genetic.model_alphabet(tiny_model)
    assert alphabet and not any(t.startswith("<") for t in alphabet)
    parents = [genetic.selfies_tokens(s) for s in ["CC(=O)Nc1ccc(O)cc1", "CCOC(=O)c1ccccc1", "CCN"]]
    children = genetic.token_children(parents, np.full(3, 1 / 3), 200, alphabet, rng, crossover_rate=0.5,
                                      max_len=tiny_model.config.max_len)
    assert all(1 <= len(c) <= tiny_model.config.max_len for c in children)
    smiles = postprocess(["".join(c) for c in children])[0]
    assert all(s is not None for s in smiles)  # every SELFIES string is a molecule
    assert len(set(smiles)) > 50
    mutant = genetic.mutate(["[C]"], alphabet, rng)
    assert 1 <= len(mutant) <= 2
    assert genetic.crossover(["[C]", "[O]"], ["[N]", "[F]"], rng)[0] == "[C]"


def test_diversity_filter_penalizes_repeats_and_full_scaffolds():
    flt = reinvent.DiversityFilter(bucket=2, min_score=0.5, penalty=0.0)
    phenyls = ["Cc1ccccc1", "CCc1ccccc1", "CCCc1ccccc1"]
    assert [flt.reward(s, 0.9) for s in phenyls] == [0.9, 0.9, 0.0]  # the third benzene is one too many
    assert flt.reward("Cc1ccccc1", 0.9) == 0.0  # a repeat earns nothing
    assert flt.reward("C1CCCCC1O", 0.9) == 0.9  # another scaffold
    assert flt.reward("CCCCc1ccccc1", 0.3) == 0.3  # below min_score: not counted, not penalized
    assert flt.full("c1ccccc1") and not flt.full("C1CCCCC1")
    off = reinvent.DiversityFilter(bucket=0)
    assert [off.reward("CCO", 0.7) for _ in range(3)] == [0.7, 0.7, 0.7]


def test_replay_buffer_keeps_the_best_and_purges_closed_scaffolds():
    buf = reinvent.ReplayBuffer(size=2)
    z = np.zeros(4)
    buf.add([reinvent.Memory(s, [3], z, r) for s, r in [("CCO", 0.1), ("Cc1ccccc1", 0.8), ("CCN", 0.5)]])
    assert [m.smiles for m in buf.best()] == ["Cc1ccccc1", "CCN"]
    flt = reinvent.DiversityFilter(bucket=1, min_score=0.0)
    flt.reward("c1ccccc1C", 1.0)
    flt.reward("c1ccccc1CC", 1.0)
    buf.purge(flt)
    assert [m.smiles for m in buf.best()] == ["CCN"]
    assert len(buf.sample(5, np.random.default_rng(0)).items) == 1


def test_randomized_selfies_are_other_strings_of_the_same_molecule(tiny_model):
    from molvae.chem import canonicalize
    from molvae.generate import postprocess

    smiles = ["CC(=O)Nc1ccc(O)cc1", "CCOC(=O)c1ccccc1"]
    items = [reinvent.Memory(s, reinvent.token_ids(tiny_model, s), np.zeros(tiny_model.latent_dim), 1.0)
             for s in smiles]
    assert all(m.row for m in items)
    rows = reinvent.randomized_rows(tiny_model, items, np.random.default_rng(0))
    assert all(r != m.row for r, m in zip(rows, items))
    assert all(max(r) < len(tiny_model.vocab) for r in rows)
    decoded = postprocess([tiny_model.vocab.decode(r) for r in rows])[0]
    assert decoded == [canonicalize(s) for s in smiles]


def test_agent_likelihood_is_the_samplers_and_the_update_moves_it(tiny_model):
    import torch

    agent = reinvent.Agent(tiny_model, lr=0.01, seed=0)
    z = np.random.default_rng(0).standard_normal((16, tiny_model.latent_dim))
    rows, smiles = agent.sample(z)
    assert all(s is not None for s in smiles)
    with torch.no_grad():
        before = agent.log_likelihood(agent.net, z, rows)
        prior = agent.log_likelihood(agent.prior, z, rows)
    assert torch.allclose(before, prior) and (before < 0).all() and torch.isfinite(before).all()
    # the likelihood is the sampler's: the commonest of 3,000 draws at one point comes up as often as it says
    many = np.repeat(z[:1], 3000, axis=0)
    drawn, _ = agent.sample(many)
    counts: dict[tuple, int] = {}
    for r in drawn:
        counts[tuple(r)] = counts.get(tuple(r), 0) + 1
    common = max(counts, key=counts.get)
    with torch.no_grad():
        p = float(agent.log_likelihood(agent.net, z[:1], [list(common)]).exp())
    assert abs(counts[common] / 3000 - p) < 0.03, (counts[common] / 3000, p)
    rewards = np.zeros(16)
    rewards[:8] = 1.0
    for _ in range(5):
        agent.update(z, rows, rewards, sigma=20.0)
    with torch.no_grad():
        gain = agent.log_likelihood(agent.net, z, rows) - prior
    assert gain[:8].mean() > gain[8:].mean() + 1.0  # rewarded strings became likelier than the others
    with torch.no_grad():  # the frozen model is untouched
        assert torch.equal(agent.log_likelihood(agent.prior, z, rows), prior)


def test_options_are_checked_before_anything_runs(tiny_model):
    with pytest.raises(ConfigError, match="unknown option"):
        optimize(tiny_model, "qed", budget=5, method="reinvent", progress=False, options={"sigmaa": 1})
    with pytest.raises(ConfigError, match="z_source"):
        optimize(tiny_model, "qed", budget=5, method="reinvent", progress=False, options={"z_source": "x"})
    with pytest.raises(ConfigError, match="latent_share"):
        optimize(tiny_model, "qed", budget=5, method="selfies_ga", progress=False, options={"latent_share": 2})
    with pytest.raises(ConfigError, match="latent_share"):
        optimize(tiny_model, "qed", budget=5, method="selfies_ga", progress=False, options={"latent_share": "half"})
    with pytest.raises(ConfigError, match="graph_share"):
        optimize(tiny_model, "qed", budget=5, method="selfies_ga", progress=False,
                 options={"latent_share": 0.6, "graph_share": 0.6})


# --------------------------------------------------------------------------- surrogate screening


def test_tanimoto_gp_ranks_unseen_molecules_by_their_neighbours_scores():
    from molvae.optimize.surrogate import TanimotoGP, fingerprints

    phenols = ["Oc1ccccc1", "Cc1ccc(O)cc1", "CCc1ccc(O)cc1", "Oc1ccc(Cl)cc1", "COc1ccc(O)cc1"]
    alkanes = ["CCCCCC", "CCCCCCC", "CC(C)CCC", "CCCCCCCC", "CC(C)CC(C)C"]
    gp = TanimotoGP().fit(fingerprints(phenols + alkanes), np.array([1.0] * 5 + [0.0] * 5))
    mean, sd = gp.predict(fingerprints(["Oc1ccc(Br)cc1", "CCCCCCCCC", "Oc1ccccc1"]))
    assert mean[0] > 0.6 > 0.4 > mean[1], mean  # a new phenol scores like the phenols, a new alkane like alkanes
    assert abs(mean[2] - 1.0) < 0.1 and sd[2] < sd[0], (mean, sd)  # a training molecule: known, and surer


def test_screen_picks_new_distinct_candidates_near_the_best_scores():
    from molvae.optimize.oracle import Answer
    from molvae.optimize.surrogate import Screen

    screen = Screen(np.random.default_rng(0))
    seen = {"Oc1ccccc1": 1.0, "Cc1ccc(O)cc1": 0.9, "Oc1ccc(Cl)cc1": 0.9, "CCCCCC": 0.0, "CCCCCCC": 0.0,
            "CC(C)CCC": 0.1, "CCCCCCCC": 0.0, "CCOCC": 0.2, "CCCO": 0.3, "CCN": 0.1, "CCCCN": 0.1}
    screen.observe([Answer(smiles=s, status="new", score=v) for s, v in seen.items()])
    picked = screen.pick(["CCCCCCCCC", None, "Oc1ccc(Br)cc1", "Oc1ccccc1", "Oc1ccc(Br)cc1", "CCCCCCCCCC"], 2,
                         known=set(seen))
    assert picked == [2, 0] or picked == [2, 5], picked  # the phenol first; no repeat, no None, no known one


def test_screened_ga_climbs_and_needs_the_surrogate(tiny_model, monkeypatch):
    from molvae.optimize import surrogate

    budget, options = 200, {"children": 25}  # screened_ga: graph_ga with screen=4
    screened = _charged(optimize(tiny_model, n_and_o_share, budget=budget, method="screened_ga", seed=0,
                                 progress=False, options=options), budget)
    monkeypatch.setattr(surrogate.TanimotoGP, "predict",  # a surrogate that knows nothing: random picks
                        lambda self, x: (np.random.default_rng(len(x)).random(len(x)), np.zeros(len(x))))
    blind = _charged(optimize(tiny_model, n_and_o_share, budget=budget, method="screened_ga", seed=0,
                              progress=False, options=options), budget)
    assert len(screened) == budget
    assert screened[-100:].mean() > blind[-100:].mean() + 0.05, (screened[-100:].mean(), blind[-100:].mean())


SMALL_SEEDS = ["CCO", "CCN", "CC(=O)O", "c1ccncc1", "CCOC", "NCCO", "CC(N)=O", "OCCO", "CNC", "COC(C)=O"]


def test_screened_ga_sends_no_child_that_breaks_a_constraint(tiny_model, monkeypatch):
    """Seeded with small molecules, so every later molecule is a child (the tiny model's own prior
    samples, unscreened by design, are mostly repaired and rejected, which would leave no parents)."""
    def later_violations(res):  # past the seed molecules the study starts with
        return int((res.df["status"].iloc[len(SMALL_SEEDS):] == "violated").sum())

    def run():
        return optimize(tiny_model, n_and_o_share, budget=120, method="screened_ga", seed=0, progress=False,
                        seeds=SMALL_SEEDS, constraints=["heavy_atoms<=10"],
                        options={"children": 20, "immigrants": 0.0, "n_init": 20})

    screened = run()
    monkeypatch.setattr(genetic, "breaking_constraints", lambda oracle, smiles: set())  # the screen unaware
    unaware = run()
    assert later_violations(unaware) >= 10, later_violations(unaware)  # the constraint bites on the children
    assert later_violations(screened) == 0, later_violations(screened)
    assert (screened.scored["smiles"].map(lambda s: parse_smiles(s)[0].GetNumHeavyAtoms()) <= 10).all()


def test_screen_is_checked(tiny_model):
    for bad in (0, 2.5, "4", True):
        with pytest.raises(ConfigError, match="screen"):
            optimize(tiny_model, "qed", budget=5, method="graph_ga", progress=False, options={"screen": bad})
