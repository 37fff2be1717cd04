"""FLOPs: Table 4's pre-training column recomputed; inference from record usage."""

import pytest
from analysis_fixtures import study_records

from ttslab.analysis import flops, reference


def test_table4_pretraining_column_recomputed_exactly_at_printed_precision():
    t4 = reference.table4()
    for _, row in t4.iterrows():
        params, tokens, _ = flops.PRETRAINING[row["policy_model"]]
        computed = flops.pretraining_flops(params, tokens)
        assert float(f"{computed:.2e}") == row["pretraining_flops"], row["policy_model"]
        # inference is negligible: the printed total equals pre-training at 3 significant figures
        assert float(f"{computed + row['inference_flops']:.2e}") == row["total_flops"]


def test_table4_pretraining_named_values():
    want = {
        "Llama-3.2-3B-Inst.": 1.62e23,
        "Llama-3.1-405B-Inst.": 3.65e25,
        "DeepSeek-R1-Distill-7B": 7.56e23,
        "DeepSeek-R1": 5.96e25,
    }
    for model, value in want.items():
        assert float(f"{flops.pretraining_flops(*flops.PRETRAINING[model][:2]):.2e}") == value


def test_inference_flops_counts_policy_and_prm_with_and_without_reuse():
    rec = study_records(n_problems=1)[1]  # the Best-of-N record
    row = flops.inference_flops([rec]).iloc[0]
    pu, qu = rec["usage"]["policy"], rec["usage"]["prm"]
    assert row["policy_flops_reuse"] == 2 * rec["policy_params"] * (
        pu["prompt_tokens"] - pu["cached_tokens"] + pu["completion_tokens"]
    )
    assert row["policy_flops_no_reuse"] == 2 * rec["policy_params"] * (
        pu["prompt_tokens"] + pu["completion_tokens"]
    )
    assert row["prm_flops_no_reuse"] == 2 * rec["prm_params"] * (
        qu["prompt_tokens"] + qu["completion_tokens"]
    )
    assert row["total_flops_reuse"] == row["policy_flops_reuse"] + row["prm_flops_reuse"]
    assert row["policy_flops_reuse"] < row["policy_flops_no_reuse"]


def test_cot_record_without_prm_costs_no_prm_flops():
    rec = study_records(n_problems=1)[0]
    assert rec["method"] == "cot" and rec["prm"] is None
    assert flops.inference_flops([rec]).iloc[0]["prm_flops_reuse"] == 0


def test_missing_params_with_usage_is_a_clear_error():
    rec = dict(study_records(n_problems=1)[1], policy_params=None)
    with pytest.raises(ValueError, match="policy_params"):
        flops.inference_flops([rec])


def test_summary_and_small_vs_large():
    s = flops.inference_summary(study_records(n_problems=3))
    assert set(s["method"]) == {"cot", "best_of_n", "beam_search", "dvts"} and (s["records"] == 3).all()
    t = flops.small_vs_large("Llama-3.2-3B-Inst.", 3.07e17, "Llama-3.1-405B-Inst.", 4.25e17)
    assert t["total_vs_small"].iloc[1] == pytest.approx(3.645e25 / (1.62e23 + 3.07e17), rel=1e-6)
    with pytest.raises(KeyError, match="GPT-5"):
        flops.small_vs_large("GPT-5", 1, "DeepSeek-R1", 1)
