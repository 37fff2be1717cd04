"""The study's published numbers (Liu et al. 2025, Tables 1-6, Figures 1 and 6) as tidy DataFrames.

The CSV files under reference_data/ copy reference/paper.md cell for cell. Every row carries a
`source` (where the number was read) and a `flag` (empty, or the paper's own inconsistency or
missing context, e.g. Table 3 vs Table 5 for Llama-3.2-3B). Nothing here is corrected: flags say
what is wrong, the values stay as printed.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

TABLES = {
    "table1": "table1_prm_training_data.csv",
    "table2": "table2_voting_methods.csv",
    "table3": "table3_small_vs_frontier.csv",
    "table4": "table4_flops.csv",
    "table5": "table5_compute_optimal.csv",
    "table6": "table6_long_cot.csv",
    "figure1": "figure1_small_vs_large.csv",
    "figure6_fit": "figure6_prm_fit.csv",
}


def load(name: str) -> pd.DataFrame:
    """One reference table by short name (table1..table6, figure1, figure6_fit)."""
    if name not in TABLES:
        raise KeyError(f"unknown reference table {name!r}; expected one of {', '.join(TABLES)}")
    path = resources.files("ttslab.analysis") / "reference_data" / TABLES[name]
    with resources.as_file(path) as p:
        df = pd.read_csv(p, keep_default_na=False, na_values={"budget": [""]})
    df["flag"] = df["flag"].astype(str)
    return df


def table1() -> pd.DataFrame:
    """Token statistics of the RLHFlow PRM training data."""
    return load("table1")


def table2() -> pd.DataFrame:
    """TTS accuracy on MATH-500 per voting rule for Skywork-PRM-7B and Qwen2.5-Math-PRM-7B."""
    return load("table2")


def table3() -> pd.DataFrame:
    """Small policies with compute-optimal TTS vs frontier LLMs with CoT (long: one row per cell)."""
    return load("table3")


def table4() -> pd.DataFrame:
    """Pre-training, inference and total FLOPs of small (TTS) vs large (CoT) policies."""
    return load("table4")


def table5() -> pd.DataFrame:
    """CoT vs majority voting vs compute-optimal TTS on MATH-500, with the printed gains."""
    return load("table5")


def table6() -> pd.DataFrame:
    """Compute-optimal TTS vs long-CoT methods (long: one row per cell)."""
    return load("table6")


def figure1() -> pd.DataFrame:
    """The bar values printed on Figure 1's six panels."""
    return load("figure1")


def figure6_fit() -> tuple[float, float]:
    """(slope, intercept) of Figure 6's fit Y = slope * ln(X) + intercept (secondary source, see flag)."""
    df = load("figure6_fit").set_index("quantity")["value"]
    return float(df["slope"]), float(df["intercept"])


def flagged() -> pd.DataFrame:
    """Every flagged row of every table, for a quick look at the paper's own inconsistencies."""
    parts: list[dict] = []
    for name in TABLES:
        df = load(name)
        cells = df.drop(columns=["source", "flag"])
        for i in df.index[df["flag"] != ""]:
            parts.append({"table": name, "row": " | ".join(map(str, cells.loc[i])), "flag": df.at[i, "flag"]})
    return pd.DataFrame(parts, columns=["table", "row", "flag"])
