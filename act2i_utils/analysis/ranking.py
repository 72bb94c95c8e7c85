"""Rankings from side-by-side comparisons: Bradley-Terry with ties (Davidson 1970), win rates, the
judge's position bias and its agreement with people.

A comparison is one answer about one pair: systems a and b (models or variants) on one prompt, and
`outcome_a`: 1 when a is better, 0 when b is, 0.5 for a tie (people's "both good" or "both bad").
The VLM judge gives a probability, P(a better), used as a soft outcome (its expected wins).

Davidson's model gives system i a strength pi_i = exp(theta_i) and the ties a weight nu:

    P(i beats j) = pi_i / D,  P(tie) = nu sqrt(pi_i pi_j) / D,  D = pi_i + pi_j + nu sqrt(pi_i pi_j)

fitted by maximum likelihood (nu = 0, plain Bradley-Terry, when there are no ties); strengths are
reported centred (their mean is 0), so a strength is a log-odds against the average system. The
prompt is the statistical unit: every interval comes from a bootstrap over prompts (each draw keeps
all the comparisons of every drawn prompt), as everywhere in act2i. The intervals are expanded
percentile intervals (Hesterberg 2015): the bootstrap quantiles at Phi(-sqrt(n/(n-1)) t_{n-1}) for n
prompts instead of at alpha/2, which corrects the plain percentile interval's undercoverage with few
prompts (by simulation with 40 prompts, tests/test_pairwise.py: 92.9 % for the plain one, 93.8 % expanded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from .stats import bootstrap_draws, rng_for

COMPARISON_COLUMNS = ["id", "a", "b", "outcome_a", "source"]


def interval(boot: np.ndarray, prompts: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The expanded percentile interval over the bootstrap draws (axis 0) from `prompts` prompts."""
    from scipy.stats import norm, t

    alpha = (1 - confidence) / 2
    if prompts > 1:
        alpha = norm.cdf(-np.sqrt(prompts / (prompts - 1)) * t.ppf(1 - alpha, prompts - 1))
    return np.nanquantile(boot, alpha, axis=0), np.nanquantile(boot, 1 - alpha, axis=0)


def tallies(comparisons: pd.DataFrame, systems: list[str], prompts: list | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """(wins[P, K, K]: prompt p, row beats column; ties[P, K, K], symmetric; the prompts) from comparisons."""
    index = {s: k for k, s in enumerate(systems)}
    prompts = prompts if prompts is not None else list(dict.fromkeys(comparisons["id"]))
    where = {p: n for n, p in enumerate(prompts)}
    wins = np.zeros((len(prompts), len(systems), len(systems)))
    ties = np.zeros_like(wins)
    p = comparisons["id"].map(where).to_numpy()
    a = comparisons["a"].map(index).to_numpy()
    b = comparisons["b"].map(index).to_numpy()
    outcome = comparisons["outcome_a"].to_numpy(dtype=float)
    tie = outcome == 0.5
    np.add.at(wins, (p[~tie], a[~tie], b[~tie]), outcome[~tie])
    np.add.at(wins, (p[~tie], b[~tie], a[~tie]), 1 - outcome[~tie])
    np.add.at(ties, (p[tie], a[tie], b[tie]), 1.0)
    np.add.at(ties, (p[tie], b[tie], a[tie]), 1.0)
    return wins, ties, prompts


def fit_davidson(wins: np.ndarray, ties: np.ndarray, with_ties: bool | None = None,
                 start: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, float]:
    """(centred strengths theta[K], tie weight nu) maximising Davidson's likelihood for summed tallies
    wins[K, K] (row beats column) and ties[K, K] (symmetric); nu = 0 without ties. `start`: an earlier
    fit to begin from (a bootstrap draw starts from the point estimate)."""
    k = len(wins)
    with_ties = bool(ties.sum() > 0) if with_ties is None else with_ties
    upper = np.triu_indices(k, 1)
    w_ij, w_ji, t = wins[upper], wins.T[upper], ties[upper]
    i, j = upper

    def negative(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.r_[0.0, params[:k - 1]]
        log_nu = params[k - 1] if with_ties else -np.inf
        half = 0.5 * (theta[i] + theta[j])
        # log D = logsumexp(theta_i, theta_j, log nu + half)
        stack = np.stack([theta[i], theta[j], np.full_like(half, log_nu) + half]) if with_ties else \
            np.stack([theta[i], theta[j]])
        top = stack.max(0)
        exp = np.exp(stack - top)
        log_d = top + np.log(exp.sum(0))
        share = exp / exp.sum(0)  # d log D / d (each term)
        ll = (w_ij * (theta[i] - log_d) + w_ji * (theta[j] - log_d)).sum()
        n = w_ij + w_ji + t
        grad = np.zeros(k)
        np.add.at(grad, i, w_ij - n * share[0])
        np.add.at(grad, j, w_ji - n * share[1])
        g_nu = 0.0
        if with_ties:
            ll += (t * (log_nu + half - log_d)).sum()
            np.add.at(grad, i, 0.5 * t - 0.5 * n * share[2])
            np.add.at(grad, j, 0.5 * t - 0.5 * n * share[2])
            g_nu = (t - n * share[2]).sum()
        out = np.r_[grad[1:], g_nu] if with_ties else grad[1:]
        return -ll, -out

    if start is None:
        x0 = np.zeros(k - 1 + (1 if with_ties else 0))
    else:
        x0 = np.r_[start[0][1:] - start[0][0], [np.log(max(start[1], 1e-12))] if with_ties else []]
    result = optimize.minimize(negative, x0, jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-10},
                               bounds=[(-30, 30)] * (k - 1) + ([(-30, 10)] if with_ties else []))
    theta = np.r_[0.0, result.x[:k - 1]]
    nu = float(np.exp(result.x[k - 1])) if with_ties else 0.0
    return theta - theta.mean(), nu


def fit_draws(wins: np.ndarray, ties: np.ndarray, with_ties: bool, start: tuple[np.ndarray, float],
              tol: float = 1e-10, max_iter: int = 5000) -> np.ndarray:
    """Centred strengths theta[B, K] of Davidson's model for B tallies at once (bootstrap draws:
    wins[B, K, K], ties[B, K, K]), by the fixed-point iteration of its likelihood equations (Zermelo's
    for Bradley-Terry, with Davidson's tie term), started from `start`, the point estimate:

        pi_i <- (W_i + T_i / 2) / sum_j n_ij (1 + nu/2 sqrt(pi_j / pi_i)) / D_ij,
        nu <- T / sum_{i<j} n_ij sqrt(pi_i pi_j) / D_ij

    Vectorised over the draws (a hundred times faster than one L-BFGS fit per draw, and equal to it
    within 1e-6, tests/test_pairwise.py); a system without a win in a draw stops at log-strength -30
    as `fit_davidson` does."""
    n = wins + wins.transpose(0, 2, 1) + ties
    score = wins.sum(2) + 0.5 * ties.sum(2)
    tied = ties.sum((1, 2)) / 2
    pi = np.broadcast_to(np.exp(start[0]), score.shape).copy()
    nu = np.full(len(pi), start[1] if with_ties else 0.0)
    for _ in range(max_iter):
        root = np.sqrt(pi[:, :, None] * pi[:, None, :])
        d = pi[:, :, None] + pi[:, None, :] + nu[:, None, None] * root
        denominator = (n * (1 + 0.5 * nu[:, None, None] * np.sqrt(pi[:, None, :] / pi[:, :, None])) / d).sum(2)
        new = np.where(denominator > 0, score / np.where(denominator > 0, denominator, 1.0), pi)
        new = np.maximum(new, np.exp(-30.0))
        new /= np.exp(np.log(new).mean(1, keepdims=True))
        if with_ties:
            root = np.sqrt(new[:, :, None] * new[:, None, :])
            d = new[:, :, None] + new[:, None, :] + nu[:, None, None] * root
            nu = tied / np.maximum((n * root / d).sum((1, 2)) / 2, 1e-300)
        change = np.abs(np.log(new) - np.log(pi)).max()
        pi = new
        if change < tol:
            break
    theta = np.log(pi)
    return theta - theta.mean(1, keepdims=True)


def rank(comparisons: pd.DataFrame, systems: list[str] | None = None, n_boot: int = 1000, confidence: float = 0.95,
         seed: int = 0) -> tuple[pd.DataFrame, float]:
    """One row per system, strongest first: strength (centred log-strength) with its prompt-bootstrap
    interval, and the comparisons (`pairs`) and prompts it took part in; and the tie weight nu."""
    systems = systems or list(dict.fromkeys([*comparisons["a"], *comparisons["b"]]))
    wins, ties, prompts = tallies(comparisons, systems)
    theta, nu = fit_davidson(wins.sum(0), ties.sum(0))
    with_ties = bool(ties.sum() > 0)
    draws = bootstrap_draws(len(prompts), n_boot, rng_for(seed, "ranking", *systems))
    boot = fit_draws(np.tensordot(draws, wins, 1), np.tensordot(draws, ties, 1), with_ties, (theta, nu))
    low, high = interval(boot, len(prompts), confidence)
    total, tied = wins.sum(0), ties.sum(0)
    played = total.sum(1) + total.sum(0) + tied.sum(1)
    present = [(wins[:, s].sum(1) + wins[:, :, s].sum(1) + ties[:, s].sum(1) > 0).sum() for s in range(len(systems))]
    table = pd.DataFrame({"system": systems, "strength": theta, "ci_low": low, "ci_high": high,
                          "pairs": np.round(played).astype(int), "prompts": present})
    return table.sort_values("strength", ascending=False, kind="stable").reset_index(drop=True), nu


def win_rates(comparisons: pd.DataFrame, systems: list[str] | None = None, n_boot: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Long table: system against opponent, the share of their comparisons it wins (a tie counts one
    half), its prompt-bootstrap interval, and the comparisons (`pairs`) and prompts behind it."""
    systems = systems or list(dict.fromkeys([*comparisons["a"], *comparisons["b"]]))
    wins, ties, prompts = tallies(comparisons, systems)
    draws = bootstrap_draws(len(prompts), n_boot, rng_for(seed, "win_rates", *systems))
    score = wins + 0.5 * ties
    games = wins + wins.transpose(0, 2, 1) + ties
    boot = np.tensordot(draws, score, 1) / np.where((g := np.tensordot(draws, games, 1)) > 0, g, np.nan)
    rows = []
    for r, row in enumerate(systems):
        for c, col in enumerate(systems):
            n = games[:, r, c].sum()
            if r == c or n == 0:
                continue
            low, high = interval(boot[:, r, c], int((games[:, r, c] > 0).sum()), confidence)
            rows.append({"system": row, "opponent": col, "win_rate": score[:, r, c].sum() / n,
                         "ci_low": low, "ci_high": high,
                         "pairs": int(round(n)), "prompts": int((games[:, r, c] > 0).sum())})
    return pd.DataFrame(rows, columns=["system", "opponent", "win_rate", "ci_low", "ci_high", "pairs", "prompts"])


def position_bias(judgements: pd.DataFrame, pairs: pd.DataFrame, n_boot: int = 1000, confidence: float = 0.95,
                  seed: int = 0) -> pd.DataFrame:
    """Per judge: how much more often it prefers the first image than the order-free answer would
    (mean of (P(first | a first) + P(first | b first)) / 2 - 1/2; 0 is none, 0.5 always the first), with
    its prompt-bootstrap interval, and how often the two orders disagree on the winner."""
    rows = []
    merged = judgements.merge(pairs[["pair_id", "id"]], on="pair_id")
    for judge, part in merged.groupby("judge", sort=False):
        bias = (part["p_first_ab"] + part["p_first_ba"]) / 2 - 0.5
        flips = ((part["p_first_ab"] > 0.5) == (part["p_first_ba"] > 0.5)).astype(float)  # the same position won twice
        codes, prompts = pd.factorize(part["id"])
        draws = bootstrap_draws(len(prompts), n_boot, rng_for(seed, "position", judge))
        sums = np.stack([np.bincount(codes, weights=v.to_numpy(), minlength=len(prompts)) for v in (bias, flips)])
        counts = np.bincount(codes, minlength=len(prompts)).astype(float)
        boot = (draws @ sums.T) / (draws @ counts)[:, None]
        low, high = interval(boot, len(prompts), confidence)
        rows.append({"judge": judge, "position_bias": bias.mean(), "ci_low": low[0], "ci_high": high[0],
                     "order_flips": flips.mean(), "order_flips_ci_low": low[1], "order_flips_ci_high": high[1],
                     "pairs": len(part),
                     "prompts": len(prompts)})
    return pd.DataFrame(rows, columns=["judge", "position_bias", "ci_low", "ci_high", "order_flips", "order_flips_ci_low",
                                       "order_flips_ci_high", "pairs", "prompts"])


def tie_aware_accuracy(judge: np.ndarray, human: np.ndarray) -> tuple[float, float]:
    """(accuracy, epsilon): the share of pairs where the judge agrees with people, a judge value within
    epsilon of 1/2 counting as a tie (right when people tie), epsilon chosen to maximise it (tie
    calibration, Deutsch et al. 2023). `judge`: P(a better); `human`: outcome for a in [0, 1]."""
    if len(judge) == 0:
        return float("nan"), float("nan")
    gap = np.abs(judge - 0.5)
    sign_j, sign_h = np.sign(judge - 0.5), np.sign(human - 0.5)
    order = np.argsort(gap, kind="stable")
    gap, sign_j, sign_h = gap[order], sign_j[order], sign_h[order]
    tied_h = sign_h == 0
    right_when_ranked = (sign_j == sign_h) & ~tied_h
    ties_right = np.cumsum(tied_h)  # epsilon = gap[k]: pairs 0..k are judge ties
    ranked_right_after = right_when_ranked.sum() - np.cumsum(right_when_ranked)
    last = np.r_[gap[1:] != gap[:-1], True]
    correct = np.where(last, ties_right + ranked_right_after, -1)
    best = int(np.argmax(correct))
    if right_when_ranked.sum() >= correct[best]:
        return right_when_ranked.sum() / len(gap), 0.0
    return correct[best] / len(gap), float(gap[best])


def agreement(human: pd.DataFrame, judge: pd.DataFrame, pairs: pd.DataFrame, systems: list[str],
              n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per judge: its tie-aware pairwise accuracy against the people on the pairs both answered (the
    people's mean outcome per pair), with a prompt-bootstrap interval at the chosen epsilon, and the
    Kendall tau between its ranking and the people's."""
    from scipy.stats import kendalltau

    people = human.groupby("pair_id", sort=False)["outcome_a"].mean().rename("human")
    theirs, _ = rank(human, systems, n_boot=1)
    rows = []
    for name, part in judge.groupby("judge", sort=False):
        both = part.merge(people, left_on="pair_id", right_index=True).merge(pairs[["pair_id", "id"]], on="pair_id")
        if both.empty:
            continue
        accuracy, epsilon = tie_aware_accuracy(both["p_a"].to_numpy(), both["human"].to_numpy())
        codes, prompts = pd.factorize(both["id"])
        judged = np.abs(both["p_a"].to_numpy() - 0.5)
        sj = np.where(judged <= epsilon, 0, np.sign(both["p_a"].to_numpy() - 0.5))
        right = (sj == np.sign(both["human"].to_numpy() - 0.5)).astype(float)
        draws = bootstrap_draws(len(prompts), n_boot, rng_for(seed, "agreement", name))
        boot = (draws @ np.bincount(codes, weights=right, minlength=len(prompts))) / \
            (draws @ np.bincount(codes, minlength=len(prompts)).astype(float))
        soft = part.assign(outcome_a=part["p_a"]).merge(pairs[["pair_id", "id", "a", "b"]], on="pair_id")
        union = list(dict.fromkeys([*human["id"], *soft["id"]]))
        hw, ht, _ = tallies(human, systems, union)
        jw, jt, _ = tallies(soft, systems, union)
        reference = theirs.set_index("system")["strength"].reindex(systems).to_numpy()
        mine = fit_davidson(jw.sum(0), jt.sum(0))[0]
        tau = kendalltau(mine, reference).statistic
        kendall = bootstrap_draws(len(union), n_boot, rng_for(seed, "kendall", name))
        h = fit_draws(np.tensordot(kendall, hw, 1), np.tensordot(kendall, ht, 1), bool(ht.sum() > 0),
                      fit_davidson(hw.sum(0), ht.sum(0)))
        j = fit_draws(np.tensordot(kendall, jw, 1), np.tensordot(kendall, jt, 1), bool(jt.sum() > 0),
                      fit_davidson(jw.sum(0), jt.sum(0)))
        taus = np.nan_to_num(np.array([kendalltau(a, b).statistic for a, b in zip(j, h)]), nan=0.0)
        low, high = interval(boot, len(prompts), confidence)
        tau_low, tau_high = interval(taus, len(union), confidence)
        rows.append({"judge": name, "pairwise_accuracy": accuracy, "ci_low": low, "ci_high": high, "kendall_tau": tau,
                     "kendall_tau_ci_low": tau_low, "kendall_tau_ci_high": tau_high,
                     "ranking_note": f"Kendall tau between the judge's and the people's ranking of {len(systems)} "
                                     f"systems; a judge within {epsilon:.3f} of one half counts as a tie (tie calibration)",
                     "pairs": len(both), "prompts": len(prompts)})
    return pd.DataFrame(rows, columns=["judge", "pairwise_accuracy", "ci_low", "ci_high", "kendall_tau", "kendall_tau_ci_low",
                                       "kendall_tau_ci_high", "ranking_note", "pairs", "prompts"])
