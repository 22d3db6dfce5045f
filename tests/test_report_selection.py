"""The learning-rate search rule of the report (benchmark/report/selection.py), on hand-made trials."""

from benchmark.report.selection import select, selectable
from benchmark.report.trials import Trial


def trial(lr, seed, test=None, dev=None, status="ok", dataset="rte"):
    return Trial(trial_id=f"{lr}-{seed}", suite="s", status=status, error="", model="roberta-base", stands_for=None,
                 method="unipelt", args={}, adapt=(), shared={}, learning_rate=lr, seed=seed, k=None,
                 eval_data=[dataset], values={} if test is None else {(dataset, "accuracy"): test},
                 dev_values={} if dev is None else {(dataset, "accuracy"): dev}, trainable_params=None,
                 total_params=None, spec={})


def test_best_mean_dev_rate_is_reported_on_test_over_its_seeds():
    trials = [trial(2e-4, 1, test=70.0, dev=80.0), trial(2e-4, 2, test=72.0, dev=70.0),  # dev mean 75
              trial(5e-4, 1, test=60.0, dev=77.0), trial(5e-4, 2, test=64.0, dev=76.0)]  # dev mean 76.5
    chosen = select(trials, "rte", "accuracy")
    assert chosen.learning_rate == 5e-4 and chosen.values == [60.0, 64.0]  # test is never the criterion
    assert sorted(chosen.trial_ids) == ["0.0005-1", "0.0005-2"] and chosen.searched
    text = chosen.explain()
    assert "lr 0.0005 chosen" in text and "0.0002: 75.0 (n=2)" in text and "0.0005: 76.5 (n=2)" in text


def test_ties_pick_the_smaller_rate_and_one_rate_needs_no_dev():
    tied = [trial(2e-4, 1, test=1.0, dev=50.0), trial(5e-4, 1, test=2.0, dev=50.0)]
    assert select(tied, "rte", "accuracy").learning_rate == 2e-4
    single = [trial(2e-5, 1, test=80.0), trial(2e-5, 2, test=82.0)]
    chosen = select(single, "rte", "accuracy")
    assert chosen.values == [80.0, 82.0] and not chosen.searched and chosen.explain() == "lr 2e-05"


def test_without_dev_numbers_rates_cannot_share_a_cell():
    assert not selectable([trial(2e-4, 1, test=1.0), trial(5e-4, 1, test=2.0)])
    assert selectable([trial(2e-4, 1, test=1.0, dev=3.0), trial(5e-4, 1, test=2.0, dev=4.0)])
    assert selectable([trial(2e-4, 1, test=1.0, dev=3.0), trial(5e-4, 1, status="failed")])  # a failed rate has none


def test_failures_are_counted_for_the_chosen_rate_and_an_all_failed_cell():
    trials = [trial(2e-4, 1, test=70.0, dev=80.0), trial(2e-4, 2, status="failed"), trial(5e-4, 1, test=1.0, dev=10.0)]
    chosen = select(trials, "rte", "accuracy")
    assert chosen.values == [70.0] and chosen.failed == 1
    failed = select([trial(2e-4, 1, status="failed"), trial(5e-4, 1, status="failed")], "rte", "accuracy")
    assert failed.values == [] and failed.failed == 2
    assert select([trial(2e-4, 1, test=1.0)], "cola", "mcc").values == []  # not run on that dataset


def test_dev_split_stored_under_its_own_name_selects_the_column():
    """The runner stores the dev split as the held-out part of train_data (or dev_data), e.g. rte-train,
    scored with the metric of the eval set; SQuAD keeps only a dev F1, which also selects the EM column."""
    def held_out(lr, seed, test, dev, metric="accuracy"):
        t = trial(lr, seed, test=test)
        t.values = {("squad", "em"): test, ("squad", "f1"): test + 1} if metric == "f1" else t.values
        t.eval_data = ["squad"] if metric == "f1" else t.eval_data
        t.dev_values = {("squad-train" if metric == "f1" else "rte-train", metric): dev}
        return t

    chosen = select([held_out(2e-4, 1, 70.0, 60.0), held_out(5e-4, 1, 50.0, 90.0)], "rte", "accuracy")
    assert chosen.learning_rate == 5e-4 and chosen.values == [50.0]
    squad = [held_out(2e-4, 1, 40.0, 30.0, "f1"), held_out(5e-4, 1, 20.0, 10.0, "f1")]
    assert select(squad, "squad", "em").learning_rate == 2e-4 and select(squad, "squad", "em").values == [40.0]


def test_a_task_trained_on_its_own_training_split_shares_the_method_row():
    from benchmark.report.trials import _own_training_split

    assert _own_training_split("cola-train", ["cola"]) and _own_training_split("emb-acl_arc-train", ["emb-acl_arc"])
    assert _own_training_split("emb-squad-train", ["emb-squad"])
    assert not _own_training_split("emb-math_10k", ["emb-gsm8k"])  # a separate training set is its own row
    assert not _own_training_split("cola-train", ["sst2"])
